// Benchmark harness for the engines we compare against: DPDK librte_bpf (interpreter and JIT) and
// the Linux kernel (BPF_PROG_TEST_RUN on an XDP program). Built and driven by run.sh.
//
// usage: bench_c PACKET_FILE ITERATIONS NAME DPDK_BIN KERNEL_BIN [NAME DPDK_BIN KERNEL_BIN ...]
// A *_BIN file holds raw 8-byte eBPF slots; "-" skips that engine for the program.
// If NAME.oko-jit.code exists next to DPDK_BIN (machine code written by oko-bpf-bench; the benchmark
// programs use no helpers, so the code is position independent), it is mapped read+execute and
// timed in alternating rounds with librte_bpf's JIT code: same process, same loop, same moment.
// Prints one line per measurement: RESULT <name> <engine> <ns per run> <r0 hex>.
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>

#include <rte_bpf.h>
#include <rte_errno.h>
#include <bpf/bpf.h>

#define BUFFER_SIZE 2048
// Best of many short rounds (about 0.5 ms each), as in oko-bpf-bench: on a shared machine a long
// round almost always includes a preemption, which BPF_PROG_TEST_RUN's own timer leaves out.
#define ROUNDS 101
#define ROUND_NS 5e5

static uint8_t buffer[BUFFER_SIZE] __attribute__((aligned(64)));
static size_t packet_length;

static void *read_file(const char *path, size_t *length) {
    FILE *file = fopen(path, "rb");
    if (!file) { perror(path); exit(1); }
    fseek(file, 0, SEEK_END);
    long size = ftell(file);
    fseek(file, 0, SEEK_SET);
    void *data = malloc(size > 0 ? size : 1);
    if (fread(data, 1, size, file) != (size_t)size) { perror(path); exit(1); }
    fclose(file);
    *length = size;
    return data;
}

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static volatile uint64_t sink;

// Best of ROUNDS rounds of about ROUND_NS each.
#define MEASURE(result_ns, result_r0, call) do { \
    double best_ = 1e30; uint64_t acc_ = 0; \
    double probe_ = now_ns(); \
    for (int i = 0; i < 1000; i++) { acc_ += (call); } \
    double estimate_ = (now_ns() - probe_) / 1000; if (estimate_ < 0.1) estimate_ = 0.1; \
    long n_ = (long)(ROUND_NS / estimate_); if (n_ > iterations) n_ = iterations; if (n_ < 100) n_ = 100; \
    for (int round = 0; round < ROUNDS; round++) { \
        double start = now_ns(); \
        for (long i = 0; i < n_; i++) { acc_ += (call); } \
        double elapsed = (now_ns() - start) / n_; \
        if (elapsed < best_) best_ = elapsed; \
    } \
    sink = acc_; result_r0 = (call); result_ns = best_; } while (0)

// Oko's JIT output for the program whose librte_bpf binary is `dpdk_path` (NAME.dpdk.bin ->
// NAME.oko-jit.code), mapped read+execute; NULL when absent.
static uint64_t (*load_oko_code(const char *dpdk_path))(void *, uint64_t) {
    char path[4096];
    snprintf(path, sizeof(path), "%s", dpdk_path);
    char *suffix = strstr(path, ".dpdk.bin");
    if (!suffix) return NULL;
    strcpy(suffix, ".oko-jit.code");
    FILE *file = fopen(path, "rb");
    if (!file) return NULL;
    fclose(file);
    size_t length;
    void *code = read_file(path, &length);
    void *page = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) { free(code); return NULL; }
    memcpy(page, code, length);
    free(code);
    if (mprotect(page, length, PROT_READ | PROT_EXEC) != 0) return NULL;
    return (uint64_t (*)(void *, uint64_t))page;
}

// Alternating rounds of librte_bpf's JIT code and Oko's JIT code on the same packet.
static void compare_jits(const char *name, uint64_t (*dpdk)(void *), uint64_t (*oko)(void *, uint64_t),
                         long iterations) {
    uint64_t acc = 0;
    double probe = now_ns();
    for (int i = 0; i < 1000; i++) acc += dpdk(buffer);
    double estimate = (now_ns() - probe) / 1000;
    if (estimate < 0.1) estimate = 0.1;
    long n = (long)(ROUND_NS / estimate);
    if (n > iterations) n = iterations;
    if (n < 100) n = 100;
    double best_dpdk = 1e30, best_oko = 1e30;
    for (int round = 0; round < ROUNDS; round++) {
        double start = now_ns();
        for (long i = 0; i < n; i++) acc += dpdk(buffer);
        double elapsed = (now_ns() - start) / n;
        if (elapsed < best_dpdk) best_dpdk = elapsed;
        start = now_ns();
        for (long i = 0; i < n; i++) acc += oko(buffer, packet_length);
        elapsed = (now_ns() - start) / n;
        if (elapsed < best_oko) best_oko = elapsed;
    }
    sink = acc;
    printf("RESULT %s dpdk-jit %.2f 0x%llx\n", name, best_dpdk, (unsigned long long)dpdk(buffer));
    printf("RESULT %s oko-jit %.2f 0x%llx\n", name, best_oko, (unsigned long long)oko(buffer, packet_length));
}

static void run_dpdk(const char *name, const char *path, long iterations) {
    size_t length;
    struct ebpf_insn *ins = read_file(path, &length);
    struct rte_bpf_prm prm;
    memset(&prm, 0, sizeof(prm));
    prm.ins = ins;
    prm.nb_ins = length / sizeof(*ins);
    prm.prog_arg.type = RTE_BPF_ARG_PTR;
    prm.prog_arg.size = BUFFER_SIZE;
    struct rte_bpf *bpf = rte_bpf_load(&prm);
    if (!bpf) {
        // librte_bpf refuses loops; still time Oko's code in this harness for the kernel comparison.
        printf("NOTE %s librte_bpf rejected the program: %s\n", name, strerror(rte_errno));
        uint64_t (*oko)(void *, uint64_t) = load_oko_code(path);
        if (oko) {
            double ns; uint64_t r0;
            MEASURE(ns, r0, oko(buffer, packet_length));
            printf("RESULT %s oko-jit %.2f 0x%llx\n", name, ns, (unsigned long long)r0);
        }
        free(ins);
        return;
    }
    double ns; uint64_t r0;
    MEASURE(ns, r0, rte_bpf_exec(bpf, buffer));
    printf("RESULT %s dpdk-interp %.2f 0x%llx\n", name, ns, (unsigned long long)r0);
    struct rte_bpf_jit jit;
    if (rte_bpf_get_jit(bpf, &jit) == 0 && jit.func) {
        uint64_t (*func)(void *) = jit.func;
        uint64_t (*oko)(void *, uint64_t) = load_oko_code(path);
        if (oko) {
            compare_jits(name, func, oko, iterations);
        } else {
            MEASURE(ns, r0, func(buffer));
            printf("RESULT %s dpdk-jit %.2f 0x%llx\n", name, ns, (unsigned long long)r0);
        }
    } else {
        printf("ERROR %s dpdk no JIT available\n", name);
    }
    rte_bpf_destroy(bpf);
    free(ins);
}

static void run_kernel(const char *name, const char *path, long iterations) {
    size_t length;
    struct bpf_insn *ins = read_file(path, &length);
    static char log[1 << 16];
    LIBBPF_OPTS(bpf_prog_load_opts, load_opts, .log_buf = log, .log_size = sizeof(log), .log_level = 1);
    int fd = bpf_prog_load(BPF_PROG_TYPE_XDP, name, "GPL", ins, length / sizeof(*ins), &load_opts);
    if (fd < 0) {
        printf("ERROR %s kernel load failed: %s\n", name, strerror(errno));
        fprintf(stderr, "%s\n", log);
        free(ins);
        return;
    }
    // The kernel times the repeat loop itself; take the best of ROUNDS runs.
    double best = 1e30;
    uint64_t r0 = 0;
    for (int round = 0; round < ROUNDS; round++) {
        LIBBPF_OPTS(bpf_test_run_opts, run_opts, .data_in = buffer, .data_size_in = packet_length,
                    .repeat = (int)(iterations < 200000 ? iterations : 200000));
        if (bpf_prog_test_run_opts(fd, &run_opts) != 0) {
            printf("ERROR %s kernel test run failed: %s\n", name, strerror(errno));
            return;
        }
        if (run_opts.duration < best) best = run_opts.duration;
        r0 = run_opts.retval;
    }
    printf("RESULT %s kernel-jit %.2f 0x%llx\n", name, best, (unsigned long long)r0);
    free(ins);
}

int main(int argc, char **argv) {
    if (argc < 6 || (argc - 3) % 3 != 0) {
        fprintf(stderr, "usage: %s PACKET ITERATIONS NAME DPDK_BIN KERNEL_BIN ...\n", argv[0]);
        return 2;
    }
    void *packet = read_file(argv[1], &packet_length);
    memcpy(buffer, packet, packet_length);
    long iterations = atol(argv[2]);
    for (int i = 3; i + 2 < argc; i += 3) {
        if (strcmp(argv[i + 1], "-") != 0) run_dpdk(argv[i], argv[i + 1], iterations);
        if (strcmp(argv[i + 2], "-") != 0) run_kernel(argv[i], argv[i + 2], iterations);
    }
    return 0;
}
