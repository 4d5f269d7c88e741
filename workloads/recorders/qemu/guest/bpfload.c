/* execbench guest helper: make the kernel JIT real BPF programs.
 *
 * Why: the BPF user of executable memory is the JIT (kernel/bpf/core.c
 * bpf_jit_binary_pack_alloc -> bpf_prog_pack_alloc).  No bpftool or libbpf in
 * the initramfs, so this static program uses the raw bpf(2) syscall:
 *   1. loads eBPF socket filters of several lengths (straight-line ALU,
 *      stack stores/loads, a context load and forward conditional jumps to the
 *      exit, so the x86 JIT emits a realistic mix of short and long encodings),
 *      reads back jited_prog_len / xlated_prog_len with BPF_OBJ_GET_INFO_BY_FD
 *      and prints one "bpfinfo" line per program;
 *   2. installs classic-BPF seccomp filters in child processes (the kernel
 *      converts them to eBPF and JITs them, kernel/seccomp.c), which are freed
 *      when the child exits;
 *   3. closes the socket filters in two batches (unload events).
 * Built on the host with `gcc -static -O2` against linux-libc-dev headers.
 */
#include <errno.h>
#include <linux/bpf.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static long sys_bpf(int cmd, union bpf_attr *attr)
{
	return syscall(__NR_bpf, cmd, attr, sizeof(*attr));
}

#define INSN(c, d, s, o, i) ((struct bpf_insn){ .code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i) })

/* Build a socket filter of about `n` instructions (n >= 2). */
static int build(struct bpf_insn *p, int n)
{
	int i = 0, k = 0;
	if (n < 8) { /* tiny: r0 = 0; [r0 += 1 ...]; exit */
		p[i++] = INSN(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0);
		while (i < n - 1)
			p[i++] = INSN(BPF_ALU64 | BPF_ADD | BPF_K, BPF_REG_0, 0, 0, 1);
		p[i++] = INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
		return i;
	}
	p[i++] = INSN(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_6, BPF_REG_1, 0, 0); /* r6 = ctx */
	p[i++] = INSN(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0);
	while (i + 8 <= n - 1) {
		int slot = -8 * (1 + (k % 8));
		/* r2 = skb->len */
		p[i++] = INSN(BPF_LDX | BPF_MEM | BPF_W, BPF_REG_2, BPF_REG_6, offsetof(struct __sk_buff, len), 0);
		p[i++] = INSN(BPF_ALU64 | BPF_ADD | BPF_K, BPF_REG_2, 0, 0, k * 7 + 1);
		p[i++] = INSN(BPF_STX | BPF_MEM | BPF_DW, BPF_REG_10, BPF_REG_2, slot, 0);
		p[i++] = INSN(BPF_LDX | BPF_MEM | BPF_DW, BPF_REG_3, BPF_REG_10, slot, 0);
		p[i++] = INSN(BPF_ALU64 | BPF_XOR | BPF_X, BPF_REG_0, BPF_REG_3, 0, 0);
		p[i++] = INSN(BPF_ALU64 | BPF_LSH | BPF_K, BPF_REG_0, 0, 0, 1 + (k % 5));
		p[i++] = INSN(BPF_ALU | BPF_AND | BPF_K, BPF_REG_0, 0, 0, 0xffff); /* 32-bit op */
		p[i++] = INSN(BPF_JMP | BPF_JEQ | BPF_K, BPF_REG_3, 0, 0, 0xdead); /* off fixed below */
		k++;
	}
	while (i < n - 1)
		p[i++] = INSN(BPF_ALU64 | BPF_ADD | BPF_K, BPF_REG_0, 0, 0, 3);
	p[i++] = INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
	for (int j = 0; j < i; j++) /* conditional jumps go to the exit */
		if (p[j].code == (BPF_JMP | BPF_JEQ | BPF_K))
			p[j].off = (short)(i - 1 - (j + 1));
	return i;
}

static int load(int n, int *insns_out)
{
	static struct bpf_insn prog[8192];
	static char log[65536];
	union bpf_attr a;
	int cnt = build(prog, n);
	memset(&a, 0, sizeof(a));
	a.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
	a.insns = (uint64_t)(uintptr_t)prog;
	a.insn_cnt = cnt;
	a.license = (uint64_t)(uintptr_t)"GPL";
	int fd = sys_bpf(BPF_PROG_LOAD, &a);
	if (fd < 0) { /* retry with the verifier log (log_buf must be unset when log_level is 0) */
		int err = errno;
		a.log_buf = (uint64_t)(uintptr_t)log;
		a.log_size = sizeof(log);
		a.log_level = 1;
		errno = err;
		sys_bpf(BPF_PROG_LOAD, &a);
		printf("bpf_fail insns=%d errno=%d log=%.300s\n", cnt, errno, log);
	}
	*insns_out = cnt;
	return fd;
}

static void info(int fd, int insns)
{
	struct bpf_prog_info pi;
	union bpf_attr a;
	memset(&pi, 0, sizeof(pi));
	memset(&a, 0, sizeof(a));
	a.info.bpf_fd = fd;
	a.info.info_len = sizeof(pi);
	a.info.info = (uint64_t)(uintptr_t)&pi;
	if (sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &a) < 0) {
		printf("bpf_info_fail fd=%d errno=%d\n", fd, errno);
		return;
	}
	printf("bpfinfo kind=socket id=%u insns=%d xlated=%u jited=%u\n", pi.id, insns,
	       pi.xlated_prog_len, pi.jited_prog_len);
}

/* A classic-BPF seccomp filter of n instructions: n-1 "allow if nr == X" tests
 * collapse to allow-all; kernel/seccomp.c converts it to eBPF and JITs it. */
static void seccomp_child(int n)
{
	static struct sock_filter f[1024];
	int i = 0;
	f[i++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
	while (i < n - 1)
		f[i++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 1000 + i, 0, 0);
	f[i++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	struct sock_fprog fp = { .len = (unsigned short)i, .filter = f };
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fp)) {
		printf("seccomp_fail n=%d errno=%d\n", n, errno);
		fflush(stdout);
		_exit(1);
	}
	printf("seccomp n=%d\n", i);
	fflush(stdout);
	usleep(200000);
	_exit(0);
}

int main(void)
{
	static const int sizes[] = { 2, 5, 16, 40, 64, 100, 150, 200, 300, 442, 700, 1000, 1500, 2500, 4000 };
	int nsizes = sizeof(sizes) / sizeof(sizes[0]);
	int fds[32], insns[32];
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (int i = 0; i < nsizes; i++) {
		fds[i] = load(sizes[i], &insns[i]);
		if (fds[i] >= 0)
			info(fds[i], insns[i]);
	}
	static const int sc[] = { 4, 20, 60, 200 };
	for (int i = 0; i < 4; i++) {
		pid_t pid = fork();
		if (pid == 0)
			seccomp_child(sc[i]);
		waitpid(pid, NULL, 0);
	}
	usleep(300000);
	for (int i = 0; i < nsizes; i += 2) /* every other program first */
		if (fds[i] >= 0) { close(fds[i]); printf("closed insns=%d\n", insns[i]); }
	usleep(300000);
	for (int i = 1; i < nsizes; i += 2)
		if (fds[i] >= 0) { close(fds[i]); printf("closed insns=%d\n", insns[i]); }
	usleep(300000);
	return 0;
}
