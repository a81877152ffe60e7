"""Turns RESULT/COMPILE lines from the two harnesses into the markdown table of results.md."""
import sys

iterations, kernel, cpu = sys.argv[1], sys.argv[2], sys.argv[3]
engines = ["oko-interp", "dpdk-interp", "oko-jit", "dpdk-jit", "kernel-jit"]
times, values, compile_line, errors = {}, {}, None, []
for line in sys.stdin:
    parts = line.split()
    if not parts:
        continue
    if parts[0] == "RESULT":
        name, engine, ns, r0 = parts[1], parts[2], float(parts[3]), parts[4]
        if engine == "oko-jit-swift":
            # Used for programs bench_c cannot run side by side (librte_bpf rejects loops).
            engine = "oko-jit-swift"
        times[(name, engine)] = min(ns, times.get((name, engine), ns))
        values.setdefault(name, {})[engine] = r0
    elif parts[0] == "COMPILE":
        ns = float(parts[2])
        compile_line = (int(parts[1]), min(ns, compile_line[1]) if compile_line else ns)
    elif parts[0] == "ERROR":
        if " ".join(parts[1:]) not in errors:
            errors.append(" ".join(parts[1:]))

names = sorted({name for name, _ in times})
for name in names:
    if (name, "oko-jit") not in times and (name, "oko-jit-swift") in times:
        times[(name, "oko-jit")] = times[(name, "oko-jit-swift")]
        values.setdefault(name, {})["oko-jit"] = values[name]["oko-jit-swift"]
for name in names:
    values.get(name, {}).pop("oko-jit-swift", None)
out = ["# BPF engine benchmark", "",
       f"ns per program run, best of 101 rounds of about 0.5 ms (at most {iterations} runs) in each of several alternating passes; packet: 74-byte TCP SYN. "
       f"Kernel {kernel}; CPU: {cpu}. Kernel times come from BPF_PROG_TEST_RUN (XDP), which includes "
       "the kernel's per-run test harness overhead.", "",
       "| program | " + " | ".join(engines) + " | Oko JIT / DPDK JIT | Oko interp / DPDK interp | r0 agree |",
       "|---|" + "---|" * (len(engines) + 3)]
for name in names:
    cells = [f"{times[(name, e)]:.2f}" if (name, e) in times else "n/a" for e in engines]
    def ratio(a, b):
        if (name, a) in times and (name, b) in times:
            return f"{times[(name, a)] / times[(name, b)]:.2f}x"
        return "n/a"
    # Kernel r0 is truncated to 32 bits by BPF_PROG_TEST_RUN.
    rs = values.get(name, {})
    norm = {e: int(v, 16) & (0xffffffff if e == "kernel-jit" else (1 << 64) - 1) for e, v in rs.items()}
    low = {e: v & 0xffffffff for e, v in norm.items()}
    full = {v for e, v in norm.items() if e != "kernel-jit"}
    agree = "yes" if len(full) <= 1 and len(set(low.values())) <= 1 else "NO " + str(rs)
    out.append(f"| {name} | " + " | ".join(cells) + f" | {ratio('oko-jit', 'dpdk-jit')} | "
               f"{ratio('oko-interp', 'dpdk-interp')} | {agree} |")
if ("empty", "kernel-jit") in times:
    base = times[("empty", "kernel-jit")]
    adjusted = ", ".join(f"{n} {times[(n, 'kernel-jit')] - base:.0f}" for n in names
                         if n != "empty" and (n, "kernel-jit") in times)
    out.append("")
    out.append(f"Kernel column minus its `empty` baseline ({base:.0f} ns of test-run harness): {adjusted} ns "
               "(the kernel reports whole nanoseconds).")
out.append("")
if compile_line:
    count, ns = compile_line
    out.append(f"Oko JIT compile time for a {count}-instruction program: {ns / 1000:.1f} µs (best of 50).")
out.append("")
out.append("oko-jit and dpdk-jit are timed by the same C loop in alternating rounds (bench_c maps Oko's "
           "generated code); for `prime`, which librte_bpf rejects, bench_c times Oko's code alone. "
           "Interpreters run in their own processes, alternating passes.")
out.append("")
out.append("n/a: librte_bpf rejects programs with loops (backward jumps), so `prime` runs in Oko and the kernel only.")
if errors:
    out.append("")
    out.append("Errors: " + "; ".join(errors))
print("\n".join(out))
