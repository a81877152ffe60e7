# Baseline: returns 0 at once. Shows each engine's fixed per-run cost (call, prologue, and for the
# kernel the BPF_PROG_TEST_RUN harness), to subtract from the other rows.
mov %r0, 0
exit
