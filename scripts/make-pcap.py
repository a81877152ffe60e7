#!/usr/bin/env python3
"""Writes small classic pcap files of synthetic traffic for Oko's demo, tests and benchmarks.

No third-party modules: frames are built byte by byte so that this runs on a fresh machine.

  make-pcap.py demo OUT.pcap            # mixed demo traffic (UDP, TCP SYNs, ICMP echo, ARP), 1024 frames
  make-pcap.py udp OUT.pcap --flows N   # 64-byte UDP frames, N distinct source ports (benchmarks)
"""
import argparse
import struct


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def mac(n: int) -> bytes:
    return bytes([0x02, 0x00, 0x00, 0x00, (n >> 8) & 0xFF, n & 0xFF])


def ipv4(src: int, dst: int, proto: int, payload: bytes, ttl: int = 64) -> bytes:
    header = struct.pack("!BBHHHBBHII", 0x45, 0, 20 + len(payload), 0, 0x4000, ttl, proto, 0, src, dst)
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return header + payload


def l4_checksum(src: int, dst: int, proto: int, segment: bytes) -> int:
    pseudo = struct.pack("!IIBBH", src, dst, 0, proto, len(segment))
    return checksum(pseudo + segment)


def udp(src: int, dst: int, sport: int, dport: int, payload: bytes) -> bytes:
    segment = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    csum = l4_checksum(src, dst, 17, segment) or 0xFFFF
    return segment[:6] + struct.pack("!H", csum) + segment[8:]


def tcp(src: int, dst: int, sport: int, dport: int, flags: int, seq: int = 1, options: bytes = b"") -> bytes:
    offset = (20 + len(options)) // 4
    segment = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, offset << 4, flags, 64240, 0, 0) + options
    csum = l4_checksum(src, dst, 6, segment)
    return segment[:16] + struct.pack("!H", csum) + segment[18:]


def icmp_echo(ident: int, seq: int) -> bytes:
    body = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + b"oko-demo"
    return body[:2] + struct.pack("!H", checksum(body)) + body[4:]


def ether(dst: bytes, src: bytes, ethertype: int, payload: bytes) -> bytes:
    frame = dst + src + struct.pack("!H", ethertype) + payload
    return frame + b"\0" * max(0, 60 - len(frame))  # pad to the Ethernet minimum (without FCS)


def ip(a: int, b: int, c: int, d: int) -> int:
    return (a << 24) | (b << 16) | (c << 8) | d


def write_pcap(path: str, frames) -> None:
    with open(path, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for index, frame in enumerate(frames):
            out.write(struct.pack("<IIII", index // 1000, (index % 1000) * 1000, len(frame), len(frame)))
            out.write(frame)


def demo_frames(count: int):
    client, server = ip(10, 0, 0, 1), ip(10, 0, 0, 2)
    syn_options = bytes([2, 4, 0x05, 0xB4, 4, 2, 8, 10]) + bytes(8) + bytes([1, 3, 3, 7])
    for i in range(count):
        kind = i % 8
        if kind < 5:
            payload = udp(client, server, 10000 + i % 64, 53 if kind == 0 else 5000, b"x" * 18)
            yield ether(mac(2), mac(1), 0x0800, ipv4(client, server, 17, payload))
        elif kind == 5:
            segment = tcp(client, server, 40000 + i % 128, 80, 0x02, seq=i, options=syn_options)
            yield ether(mac(2), mac(1), 0x0800, ipv4(client, server, 6, segment))
        elif kind == 6:
            yield ether(mac(2), mac(1), 0x0800, ipv4(client, server, 1, icmp_echo(7, i)))
        else:
            arp = struct.pack("!HHBBH6sI6sI", 1, 0x0800, 6, 4, 1, mac(1), client, bytes(6), server)
            yield ether(b"\xff" * 6, mac(1), 0x0806, arp)


def udp_frames(flows: int, size: int):
    src, dst = ip(10, 0, 0, 1), ip(10, 1, 0, 1)
    payload_len = size - 14 - 20 - 8
    for i in range(flows):
        payload = udp(src, dst, 1024 + i % 60000, 5000 + i // 60000, bytes(payload_len))
        yield ether(mac(2), mac(1), 0x0800, ipv4(src, dst, 17, payload))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=["demo", "udp"])
    parser.add_argument("output")
    parser.add_argument("--flows", type=int, default=1)
    parser.add_argument("--count", type=int, default=1024)
    parser.add_argument("--size", type=int, default=60, help="frame size without FCS (60 = 64-byte frames on the wire)")
    args = parser.parse_args()
    if args.kind == "demo":
        write_pcap(args.output, demo_frames(args.count))
    else:
        write_pcap(args.output, udp_frames(args.flows, args.size))


if __name__ == "__main__":
    main()
