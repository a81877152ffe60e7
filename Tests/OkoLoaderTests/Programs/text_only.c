/* No SEC(): the program is a global function in .text, calling a static helper in .text. */
static __attribute__((noinline)) int is_short(unsigned long length)
{
    return length < 60;
}

int match_short(void *packet, unsigned long length)
{
    return is_short(length);
}
