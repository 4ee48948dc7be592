// The Go c-archive for BenchmarkCallbackMainThread: C's main calls GoInc.
package main

import "C"

//export GoInc
func GoInc(a C.int) C.int { return a + 1 }

func main() {}
