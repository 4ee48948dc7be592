/* A panic in a callback on the C main thread, with no Rust caller above:
 * the process must abort with a message naming the callback. */
void fx_panic_no_caller(void);
long fx_add(long x);

int main(void)
{
    fx_add(1);
    fx_panic_no_caller();
    return 0; /* not reached */
}
