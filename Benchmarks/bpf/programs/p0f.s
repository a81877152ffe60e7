# p0f-like TCP SYN fingerprint: checks Ethernet/IPv4/TCP SYN, reads TTL, total length, window,
# header lengths and the option layout, and folds them into one 64-bit signature.
# Entry: r1 = packet start, r2 = packet end (each engine's prologue sets these).
mov %r0, 0
mov %r3, %r1
add %r3, 54
jgt %r3, %r2, out
ldxh %r4, [%r1+12]
jne %r4, 0x0008, out
ldxb %r4, [%r1+14]
mov %r5, %r4
rsh %r5, 4
jne %r5, 4, out
and %r4, 0x0f
lsh %r4, 2
jlt %r4, 20, out
ldxb %r5, [%r1+23]
jne %r5, 6, out
ldxb %r6, [%r1+22]
ldxh %r7, [%r1+16]
be16 %r7
mov %r3, %r1
add %r3, %r4
add %r3, 14
mov %r5, %r3
add %r5, 20
jgt %r5, %r2, out
ldxb %r5, [%r3+13]
and %r5, 0x12
jne %r5, 0x02, out
ldxh %r8, [%r3+14]
be16 %r8
ldxb %r9, [%r3+12]
rsh %r9, 4
lsh %r9, 2
jlt %r9, 40, sig
mov %r5, %r3
add %r5, 40
jgt %r5, %r2, sig
# Linux SYN layout: MSS(2,4) SACK_PERM(4,2) TIMESTAMP(8,10) NOP(1) WSCALE(3,3)
ldxb %r4, [%r3+20]
jne %r4, 2, layout
ldxh %r5, [%r3+22]
be16 %r5
lsh %r5, 32
or %r8, %r5
layout:
lsh %r4, 3
ldxb %r5, [%r3+24]
or %r4, %r5
lsh %r4, 3
ldxb %r5, [%r3+26]
or %r4, %r5
lsh %r4, 3
ldxb %r5, [%r3+36]
or %r4, %r5
lsh %r4, 3
ldxb %r5, [%r3+37]
or %r4, %r5
jne %r5, 3, nowscale
ldxb %r5, [%r3+39]
lsh %r5, 24
or %r8, %r5
nowscale:
lsh %r4, 16
xor %r8, %r4
sig:
lsh %r6, 56
mov %r0, %r8
xor %r0, %r6
lsh %r9, 48
xor %r0, %r9
lsh %r7, 40
xor %r0, %r7
out:
exit
