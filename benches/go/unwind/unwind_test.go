package unwind

import "testing"

func BenchmarkPanicAcrossC(b *testing.B) {
	for i := 0; i < b.N; i++ {
		if PanicAcrossC() == nil {
			b.Fatal("not recovered")
		}
	}
	if before, after := Marks(); before == 0 || after != 0 {
		b.Fatalf("marks: before %d after %d", before, after)
	}
}

func BenchmarkRecover(b *testing.B) {
	for i := 0; i < b.N; i++ {
		if Recover() == nil {
			b.Fatal("not recovered")
		}
	}
}

func BenchmarkCallC(b *testing.B) {
	for i := 0; i < b.N; i++ {
		if CallC() != 3 {
			b.Fatal("wrong sum")
		}
	}
}
