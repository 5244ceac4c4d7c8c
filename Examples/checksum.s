# The Internet checksum (RFC 1071) of the input memory, as IPv4, TCP and UDP headers carry it.
#
# Input: R1 points to the bytes, R2 holds their length (mimic run-raw --mem / --mem-file).
# Output: R0 = the ones' complement of the ones' complement sum of the big-endian 16-bit words.
# For an IPv4 header whose checksum field is zero, R0 is the value to store in that field.

    mov %r0, 0                  # the running sum
    mov %r3, 0                  # the offset of the next word

words:
    mov %r4, %r3
    add %r4, 2
    jgt %r4, %r2, tail          # fewer than two bytes left
    mov %r5, %r1
    add %r5, %r3
    ldxh %r6, [%r5+0]           # a little-endian load...
    be16 %r6                    # ...turned into the big-endian word on the wire
    add %r0, %r6
    mov %r3, %r4
    ja words

tail:
    jge %r3, %r2, fold          # no odd byte at the end
    mov %r5, %r1
    add %r5, %r3
    ldxb %r6, [%r5+0]
    lsh %r6, 8                  # an odd byte is the high half of a zero-padded word
    add %r0, %r6

fold:
    mov %r4, %r0
    rsh %r4, 16
    jeq %r4, 0, done            # no carries left to fold in
    and %r0, 0xffff
    add %r0, %r4
    ja fold

done:
    xor %r0, 0xffff
    exit
