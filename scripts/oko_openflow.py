#!/usr/bin/env python3
"""Oko OpenFlow extension client (Python 3 standard library only).

Speaks OpenFlow 1.3 (HELLO, FEATURES, ECHO, BARRIER, FLOW_MOD) and Oko's Nicira experimenter messages
(experimenter 0x00002320, every field big-endian):

  LOAD_FILTER_PROG (31)  be16 program id, 2 pad, be32 file length, ELF bytes
  UPDATE_MAP (32)        be16 program id, be16 map id, be32 key size, be32 value size, be32 count, entries
  DUMP_MAP_REQUEST (33)  be16 program id, be16 map count, be16 map ids (none: every map)
  DUMP_MAP_REPLY (34)    be16 program id, be16 map count, per map {be16 id, 2 pad, be32 key size,
                         be32 value size, be32 count, entries}; xid 0 when sent by a SEND_MAPS rule
  filter_prog OXM        class 0xFFFF, field 40, length 8: be32 0x00002320, be32 program id
  SEND_MAPS action       type 0xFFFF, be32 0x00002320, be16 subtype 200, be16 program, be16 count, ids
  errors                 OFPET_EXPERIMENTER (0xFFFF) with exp_code, experimenter 0x2320, UTF-8 reason

Command line (TARGET is tcp:HOST:PORT; map entries and keys are hex):
  oko_openflow.py TARGET features
  oko_openflow.py TARGET load-filter-prog ID FILE.o
  oko_openflow.py TARGET update-map ID MAP KEY=VALUE...
  oko_openflow.py TARGET dump-map ID [MAP...]
  oko_openflow.py TARGET add-flow --priority P [--in-port N] [--filter-prog ID] [--output PORT]
                                  [--send-maps ID:MAP[,MAP...]] [--cookie C]
  oko_openflow.py TARGET watch-maps [--count N] [--timeout SECONDS]
Output is JSON (one object per line for watch-maps); exit status 1 with the switch's error on failure.
"""

import argparse
import json
import socket
import struct
import sys
import time

OFP_VERSION = 0x04
NICIRA = 0x00002320
OFPT_HELLO, OFPT_ERROR, OFPT_ECHO_REQUEST, OFPT_ECHO_REPLY, OFPT_EXPERIMENTER = 0, 1, 2, 3, 4
OFPT_FEATURES_REQUEST, OFPT_FEATURES_REPLY, OFPT_FLOW_MOD = 5, 6, 14
OFPT_BARRIER_REQUEST, OFPT_BARRIER_REPLY = 20, 21
LOAD_FILTER_PROG, UPDATE_MAP, DUMP_MAP_REQUEST, DUMP_MAP_REPLY = 31, 32, 33, 34
SEND_MAPS_SUBTYPE = 200
OKO_ERRORS = {1: "bad object", 2: "verifier refused", 3: "program in use", 4: "unknown program",
              5: "unknown map", 6: "bad map entry"}


class SwitchError(Exception):
    """An OFPT_ERROR from the switch."""

    def __init__(self, etype, code, data, experimenter=None):
        self.etype, self.code, self.data, self.experimenter = etype, code, data, experimenter
        if etype == 0xFFFF:
            text = "OFPET_EXPERIMENTER 0x%x code %d (%s): %s" % (
                experimenter or 0, code, OKO_ERRORS.get(code, "?"), data.decode("utf-8", "replace"))
        else:
            text = "OpenFlow error type %d code %d (data %s)" % (etype, code, data[:16].hex())
        super().__init__(text)


def oxm_basic(field, value):
    return struct.pack("!HBB", 0x8000, field << 1, len(value)) + value


def oxm_filter_prog(program):
    return struct.pack("!HBBII", 0xFFFF, 40 << 1, 8, NICIRA, program)


def pad8(data):
    return data + b"\0" * (-len(data) % 8)


def action_output(port, max_len=0xFFFF):
    return struct.pack("!HHIH6x", 0, 16, port, max_len)


def action_send_maps(program, maps):
    body = struct.pack("!IHHH", NICIRA, SEND_MAPS_SUBTYPE, program, len(maps)) + b"".join(
        struct.pack("!H", m) for m in maps)
    length = 4 + len(body) + (-(4 + len(body)) % 8)
    return pad8(struct.pack("!HH", 0xFFFF, length) + body)


def parse_map_dumps(body):
    """Parses a DUMP_MAP_REPLY body after experimenter/subtype: (program, [map dicts])."""
    program, count = struct.unpack_from("!HH", body, 0)
    offset, maps = 4, []
    for _ in range(count):
        map_id, key_size, value_size, entries = struct.unpack_from("!H2xIII", body, offset)
        offset += 16
        items = []
        for _ in range(entries):
            key = body[offset:offset + key_size]
            value = body[offset + key_size:offset + key_size + value_size]
            offset += key_size + value_size
            items.append({"key": key.hex(), "value": value.hex()})
        maps.append({"map": map_id, "key_size": key_size, "value_size": value_size, "entries": items})
    return program, maps


class OkoOpenFlowClient:
    """One OpenFlow 1.3 connection to an Oko switch."""

    def __init__(self, host, port, timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.timeout = timeout
        self.buffer = b""
        self.xid = 100
        self.async_dumps = []  # (program, maps) of DUMP_MAP_REPLY with xid 0 seen while waiting
        self.send(OFPT_HELLO, struct.pack("!HHI", 1, 8, 1 << OFP_VERSION))  # version bitmap: 1.3 only
        mtype, _, _ = self.receive()
        if mtype != OFPT_HELLO:
            raise RuntimeError("expected HELLO, got type %d" % mtype)

    @classmethod
    def connect(cls, target, timeout=10.0):
        if not target.startswith("tcp:"):
            raise ValueError("target must be tcp:HOST:PORT, not %r" % target)
        host, _, port = target[4:].rpartition(":")
        return cls(host.strip("[]"), int(port), timeout)

    def close(self):
        self.sock.close()

    def send(self, mtype, body=b"", xid=None):
        if xid is None:
            self.xid += 1
            xid = self.xid
        self.sock.sendall(struct.pack("!BBHI", OFP_VERSION, mtype, 8 + len(body), xid) + body)
        return xid

    def receive(self, deadline=None):
        """The next message (type, xid, body); answers ECHO_REQUESTs on the way."""
        while True:
            while len(self.buffer) >= 8:
                _, mtype, length, xid = struct.unpack_from("!BBHI", self.buffer)
                if length < 8:
                    raise RuntimeError("bad message length %d" % length)
                if len(self.buffer) < length:
                    break
                body, self.buffer = self.buffer[8:length], self.buffer[length:]
                if mtype == OFPT_ECHO_REQUEST:
                    self.send(OFPT_ECHO_REPLY, body, xid)
                    continue
                return mtype, xid, body
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError("no message from the switch in time")
            self.sock.settimeout(self.timeout if remaining is None else remaining)
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the switch closed the connection")
            self.buffer += data

    def _raise_error(self, body):
        etype, code = struct.unpack_from("!HH", body)
        if etype == 0xFFFF:
            (experimenter,) = struct.unpack_from("!I", body, 4)
            raise SwitchError(etype, code, body[8:], experimenter)
        raise SwitchError(etype, code, body[4:])

    def request(self, mtype, body=b""):
        """Sends a message followed by a BARRIER; returns every reply to the message (raises on ERROR)."""
        xid = self.send(mtype, body)
        barrier = self.send(OFPT_BARRIER_REQUEST)
        replies, error = [], None
        deadline = time.monotonic() + self.timeout
        while True:
            rtype, rxid, rbody = self.receive(deadline)
            if rtype == OFPT_BARRIER_REPLY and rxid == barrier:
                break
            if rtype == OFPT_ERROR and rxid == xid:
                error = rbody
            elif rxid == xid:
                replies.append((rtype, rbody))
            elif rtype == OFPT_EXPERIMENTER and rxid == 0:
                self._note_async(rbody)
        if error is not None:
            self._raise_error(error)
        return replies

    def _note_async(self, body):
        experimenter, subtype = struct.unpack_from("!II", body)
        if experimenter == NICIRA and subtype == DUMP_MAP_REPLY:
            self.async_dumps.append(parse_map_dumps(body[8:]))

    def experimenter(self, subtype, body):
        return self.request(OFPT_EXPERIMENTER, struct.pack("!II", NICIRA, subtype) + body)

    # Oko extensions

    def features(self):
        [(rtype, body)] = self.request(OFPT_FEATURES_REQUEST)
        datapath_id, buffers, tables = struct.unpack_from("!QIB", body)
        return {"datapath_id": "%016x" % datapath_id, "buffers": buffers, "tables": tables}

    def load_filter_prog(self, program, elf):
        self.experimenter(LOAD_FILTER_PROG, struct.pack("!H2xI", program, len(elf)) + elf)

    def update_map(self, program, map_id, entries):
        """entries: list of (key bytes, value bytes), all of one key size and one value size."""
        key_size = len(entries[0][0]) if entries else 1
        value_size = len(entries[0][1]) if entries else 0
        body = struct.pack("!HHIII", program, map_id, key_size, value_size, len(entries))
        body += b"".join(k + v for k, v in entries)
        self.experimenter(UPDATE_MAP, body)

    def dump_map(self, program, maps=()):
        """Returns [map dicts]; a large dump arrives in several replies, merged here per map."""
        body = struct.pack("!HH", program, len(maps)) + b"".join(struct.pack("!H", m) for m in maps)
        merged = {}
        for rtype, rbody in self.experimenter(DUMP_MAP_REQUEST, body):
            _, parts = parse_map_dumps(rbody[8:])
            for part in parts:
                if part["map"] in merged:
                    merged[part["map"]]["entries"] += part["entries"]
                else:
                    merged[part["map"]] = part
        return list(merged.values())

    def add_flow(self, priority, match_fields=b"", instructions=b"", cookie=0, table=0):
        match = struct.pack("!HH", 1, 4 + len(match_fields)) + match_fields
        body = struct.pack("!QQBBHHHIIIH2x", cookie, 0, table, 0, 0, 0, priority, 0xFFFFFFFF, 0xFFFFFFFF,
                           0xFFFFFFFF, 0) + pad8(match) + instructions
        self.request(OFPT_FLOW_MOD, body)

    def wait_for_map_dumps(self, count, timeout):
        """Collects `count` asynchronous DUMP_MAP_REPLY messages (SEND_MAPS), or as many as arrive in time."""
        deadline = time.monotonic() + timeout
        while len(self.async_dumps) < count:
            try:
                rtype, rxid, body = self.receive(deadline)
            except (TimeoutError, socket.timeout):
                break
            if rtype == OFPT_EXPERIMENTER and rxid == 0:
                self._note_async(body)
        dumps, self.async_dumps = self.async_dumps[:count], self.async_dumps[count:]
        return dumps


def apply_actions(actions):
    body = b"".join(actions)
    return struct.pack("!HH4x", 4, 8 + len(body)) + body


def main(argv=None):
    parser = argparse.ArgumentParser(description="Oko OpenFlow extension client")
    parser.add_argument("target", help="tcp:HOST:PORT")
    parser.add_argument("--timeout", type=float, default=10.0)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("features")
    p = sub.add_parser("load-filter-prog")
    p.add_argument("program", type=int)
    p.add_argument("file")
    p = sub.add_parser("update-map")
    p.add_argument("program", type=int)
    p.add_argument("map", type=int)
    p.add_argument("entries", nargs="+", help="KEYHEX=VALUEHEX")
    p = sub.add_parser("dump-map")
    p.add_argument("program", type=int)
    p.add_argument("maps", type=int, nargs="*")
    p = sub.add_parser("add-flow")
    p.add_argument("--priority", type=int, required=True)
    p.add_argument("--in-port", type=int)
    p.add_argument("--filter-prog", type=int)
    p.add_argument("--output", type=int, action="append", default=[])
    p.add_argument("--send-maps", help="PROGRAM:MAP[,MAP...]")
    p.add_argument("--cookie", type=lambda s: int(s, 0), default=0)
    p = sub.add_parser("watch-maps")
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--wait", type=float, default=10.0)
    args = parser.parse_args(argv)

    try:
        client = OkoOpenFlowClient.connect(args.target, args.timeout)
        if args.command == "features":
            print(json.dumps(client.features()))
        elif args.command == "load-filter-prog":
            with open(args.file, "rb") as f:
                client.load_filter_prog(args.program, f.read())
            print(json.dumps({"loaded": args.program}))
        elif args.command == "update-map":
            entries = []
            for item in args.entries:
                key, _, value = item.partition("=")
                entries.append((bytes.fromhex(key), bytes.fromhex(value)))
            client.update_map(args.program, args.map, entries)
            print(json.dumps({"updated": len(entries)}))
        elif args.command == "dump-map":
            print(json.dumps({"program": args.program, "maps": client.dump_map(args.program, args.maps)}))
        elif args.command == "add-flow":
            fields = b""
            if args.in_port is not None:
                fields += oxm_basic(0, struct.pack("!I", args.in_port))
            if args.filter_prog is not None:
                fields += oxm_filter_prog(args.filter_prog)
            actions = []
            if args.send_maps:
                program, _, maps = args.send_maps.partition(":")
                actions.append(action_send_maps(int(program), [int(m) for m in maps.split(",")]))
            actions += [action_output(port) for port in args.output]
            client.add_flow(args.priority, fields, apply_actions(actions), cookie=args.cookie)
            print(json.dumps({"added": args.priority}))
        elif args.command == "watch-maps":
            for program, maps in client.wait_for_map_dumps(args.count, args.wait):
                print(json.dumps({"program": program, "maps": maps}), flush=True)
        client.close()
    except SwitchError as error:
        print("error: %s" % error, file=sys.stderr)
        return 1
    except (OSError, RuntimeError, ValueError) as error:
        print("error: %s" % error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
