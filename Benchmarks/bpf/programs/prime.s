# Loop: trial-division primality test of 10007 (about 100 iterations, each with a 64-bit mod).
# Returns 1 for prime. librte_bpf rejects loops, so this one runs only in Oko and the kernel.
mov %r1, 10007
mov %r0, 1
mov %r3, 2
loop:
mov %r4, %r3
mul %r4, %r3
jgt %r4, %r1, done
mov %r5, %r1
mod %r5, %r3
jeq %r5, 0, composite
add %r3, 1
ja loop
composite:
mov %r0, 0
done:
exit
