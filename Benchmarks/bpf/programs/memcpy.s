# Memory copy: 64 bytes from the packet to the stack (unrolled 8-byte moves), then returns
# the xor of the copied words read back from the stack.
mov %r0, 0
mov %r3, %r1
add %r3, 64
jgt %r3, %r2, out
ldxdw %r4, [%r1+0]
stxdw [%r10-64], %r4
ldxdw %r4, [%r1+8]
stxdw [%r10-56], %r4
ldxdw %r4, [%r1+16]
stxdw [%r10-48], %r4
ldxdw %r4, [%r1+24]
stxdw [%r10-40], %r4
ldxdw %r4, [%r1+32]
stxdw [%r10-32], %r4
ldxdw %r4, [%r1+40]
stxdw [%r10-24], %r4
ldxdw %r4, [%r1+48]
stxdw [%r10-16], %r4
ldxdw %r4, [%r1+56]
stxdw [%r10-8], %r4
ldxdw %r4, [%r10-64]
xor %r0, %r4
ldxdw %r4, [%r10-56]
xor %r0, %r4
ldxdw %r4, [%r10-48]
xor %r0, %r4
ldxdw %r4, [%r10-40]
xor %r0, %r4
ldxdw %r4, [%r10-32]
xor %r0, %r4
ldxdw %r4, [%r10-24]
xor %r0, %r4
ldxdw %r4, [%r10-16]
xor %r0, %r4
ldxdw %r4, [%r10-8]
xor %r0, %r4
out:
exit
