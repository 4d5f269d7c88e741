/* execbench guest helper: load real BPF objects and report their JIT sizes.
 *
 * Why: the BPF workloads size each program as (ELF instructions) x a factor;
 * this measures what the x86-64 JIT really emits for real objects
 * (workloads/recorders/qemu/jitsize.py).  Statically linked against
 * Debian's libbpf (libbpf-dev), so the initramfs needs nothing else.
 *
 * Input (argv[1]): one object per line, "ID PATH [HINT ...]".  A hint
 * SECBASE=TYPE names the program type of a section libbpf cannot infer
 * (e.g. Suricata's "filter" = socket_filter); @OLD=NEW gives an fentry/fexit
 * program whose section targets the placeholder OLD the target NEW, as the
 * tool does at run time (bpf_program__set_attach_target()).
 *
 * Per object: open it (libbpf: CO-RE against /sys/kernel/btf/vmlinux, kconfig
 * externs from /boot/config-$(uname -r)), unpin its maps (objects share map
 * names), size the maps the tool sizes at run time (see fix_maps()), and
 * load every program at once, as the tool would.  If that fails, load each
 * program alone (the others autoload=false) so that one program's failure
 * does not hide the others' sizes.  Before each bpf_object__load a line
 * "jitload obj=ID try=all|N" goes to trace_marker, so the host can assign the
 * bpf_jit_binary_pack_alloc() events that follow (one per JITed function) to
 * the programs, in libbpf's load order.
 *
 * The whole list is loaded PASSES times (default 2) by the same process.
 * libbpf probes kernel features once per process, lazily, with small
 * programs the kernel JITs too (libbpf.c kernel_supports()); after the first
 * pass only bpf_object__probe_loading()'s two-instruction program is loaded
 * at the start of every bpf_object__load(), so the last pass's allocations
 * are that one followed by the programs' own.
 *
 * Output (stdout), one tab-separated line per program and attempt:
 *   prog  id  mode  index  name  section  type  open_insns  load_insns
 *         xlated_bytes  jited_bytes  nr_funcs  func_lens(;-joined)  status
 *   log   id  mode  index  text      (libbpf/verifier lines of a failure)
 *   obj   id  mode  status  nprogs
 * Sizes come from BPF_OBJ_GET_INFO_BY_FD (struct bpf_prog_info).
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAXPROGS 256
#define LOGSZ (256 * 1024)

static char logbuf[LOGSZ];
static size_t loglen;
static int marker_fd = -1;
static int pass;

static int capture(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_DEBUG)
		return 0;
	if (loglen < LOGSZ - 1) {
		int n = vsnprintf(logbuf + loglen, LOGSZ - loglen, fmt, ap);
		if (n > 0)
			loglen += (size_t)n < LOGSZ - loglen ? (size_t)n : LOGSZ - 1 - loglen;
	}
	return 0;
}

static void marker(const char *fmt, ...)
{
	char buf[128];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (marker_fd >= 0 && n > 0)
		(void)!write(marker_fd, buf, (size_t)n);
}

/* The libbpf lines of a failed attempt: everything outside the verifier log,
 * and the last 4 lines of the verifier log (where it says why). */
static void dump_log(const char *id, const char *mode, int index)
{
	char *save = NULL, *line;
	char *tail[4] = { 0 };
	int in_vlog = 0, nt = 0;
	logbuf[loglen] = 0;
	for (line = strtok_r(logbuf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (strstr(line, "-- BEGIN PROG LOAD LOG --")) {
			in_vlog = 1;
			nt = 0;
			continue;
		}
		if (strstr(line, "-- END PROG LOAD LOG --")) {
			for (int k = nt > 4 ? nt - 4 : 0; k < nt; k++)
				printf("log\t%s\t%s\t%d\tverifier: %s\n", id, mode, index, tail[k % 4]);
			in_vlog = 0;
			continue;
		}
		if (in_vlog) {
			tail[nt % 4] = line;
			nt++;
			continue;
		}
		printf("log\t%s\t%s\t%d\t%s\n", id, mode, index, line);
	}
}

/* Maps the tools size at run time.  max_entries 0: 10240 entries (ring
 * buffers 256 KiB; perf event arrays are sized by libbpf).  Stack-trace maps
 * without a value size: the tools' default, 127 frames of 8 bytes and 1024
 * stacks (libbpf-tools perf_max_stack_depth / stack_storage_size).  CPU maps:
 * at most one entry per possible CPU (kernel/bpf/cpumap.c refuses more).
 * Socket/inode/task local storage: left at 0, the only value the kernel takes. */
static void fix_maps(struct bpf_object *obj)
{
	struct bpf_map *map;
	int ncpu = libbpf_num_possible_cpus();
	bpf_object__for_each_map(map, obj) {
		enum bpf_map_type t = bpf_map__type(map);
		bpf_map__set_pin_path(map, NULL);
		if (t == BPF_MAP_TYPE_STACK_TRACE && bpf_map__value_size(map) == 0) {
			bpf_map__set_value_size(map, 127 * 8);
			if (bpf_map__max_entries(map) == 0)
				bpf_map__set_max_entries(map, 1024);
		}
		if (t == BPF_MAP_TYPE_CPUMAP && ncpu > 0 && (int)bpf_map__max_entries(map) > ncpu)
			bpf_map__set_max_entries(map, ncpu);
		/* local storage maps must keep max_entries 0 (kernel/bpf/bpf_local_storage.c
		 * bpf_local_storage_map_alloc_check()) */
		if (t == BPF_MAP_TYPE_SK_STORAGE || t == BPF_MAP_TYPE_INODE_STORAGE
		    || t == BPF_MAP_TYPE_TASK_STORAGE)
			continue;
		if (bpf_map__max_entries(map) == 0) {
			if (t == BPF_MAP_TYPE_RINGBUF || t == BPF_MAP_TYPE_USER_RINGBUF)
				bpf_map__set_max_entries(map, 256 * 1024);
			else if (t == BPF_MAP_TYPE_CPUMAP && ncpu > 0)
				bpf_map__set_max_entries(map, ncpu);
			else if (t != BPF_MAP_TYPE_PERF_EVENT_ARRAY)
				bpf_map__set_max_entries(map, 10240);
		}
	}
}

static int type_of(const char *name)
{
	if (!strcmp(name, "socket_filter"))
		return BPF_PROG_TYPE_SOCKET_FILTER;
	if (!strcmp(name, "xdp"))
		return BPF_PROG_TYPE_XDP;
	if (!strcmp(name, "sched_cls"))
		return BPF_PROG_TYPE_SCHED_CLS;
	return -1;
}

/* Load the object with all programs (only < 0) or program `only` alone.
 * Returns 0 when bpf_object__load succeeded, -1 when it failed, -2 when the
 * object did not open. */
static int attempt(const char *id, const char *path, int only, char **hints, int nhints, int *nprogs)
{
	char mode[16];
	struct bpf_program *prog;
	size_t open_insns[MAXPROGS];
	int i = 0, err;

	if (only < 0)
		snprintf(mode, sizeof(mode), "all");
	else
		snprintf(mode, sizeof(mode), "%d", only);
	loglen = 0;
	struct bpf_object *obj = bpf_object__open_file(path, NULL);
	if (!obj) {
		err = -errno;
		printf("obj\t%s\t%s\topen_fail:%d\t0\n", id, mode, err);
		dump_log(id, mode, -1);
		return -2;
	}
	bpf_object__for_each_program(prog, obj) {
		if (i < MAXPROGS)
			open_insns[i] = bpf_program__insn_cnt(prog);
		if (only >= 0)
			bpf_program__set_autoload(prog, i == only);
		const char *sec = bpf_program__section_name(prog);
		const char *slash = strchr(sec, '/');
		for (int h = 0; h < nhints && slash; h++) {
			char *eq = strchr(hints[h], '=');
			if (hints[h][0] == '@' && eq && (size_t)(eq - hints[h] - 1) == strlen(slash + 1)
			    && !strncmp(slash + 1, hints[h] + 1, eq - hints[h] - 1)
			    && bpf_program__type(prog) == BPF_PROG_TYPE_TRACING)
				bpf_program__set_attach_target(prog, 0, eq + 1);
		}
		if (bpf_program__type(prog) == BPF_PROG_TYPE_UNSPEC) {
			for (int h = 0; h < nhints; h++) {
				char *eq = strchr(hints[h], '=');
				if (eq && (size_t)(eq - hints[h]) <= strlen(sec) && !strncmp(sec, hints[h], eq - hints[h])
				    && (sec[eq - hints[h]] == 0 || sec[eq - hints[h]] == '/') && type_of(eq + 1) > 0)
					bpf_program__set_type(prog, type_of(eq + 1));
			}
		}
		i++;
	}
	*nprogs = i;
	fix_maps(obj);
	marker("jitload pass=%d obj=%s try=%s", pass, id, mode);
	err = bpf_object__load(obj);
	i = 0;
	bpf_object__for_each_program(prog, obj) {
		int idx = i++;
		if (only >= 0 && idx != only)
			continue;
		if (!bpf_program__autoload(prog))
			continue;
		struct bpf_prog_info info;
		__u32 len = sizeof(info);
		__u32 lens[512];
		char fl[4096] = "";
		int fd = bpf_program__fd(prog);
		const char *status = "ok";
		memset(&info, 0, sizeof(info));
		if (err || fd < 0) {
			status = "fail";
		} else if (bpf_obj_get_info_by_fd(fd, &info, &len)) {
			status = "info_fail";
		} else {
			__u32 n = info.nr_jited_func_lens;
			if (n > 512)
				n = 512;
			memset(&info, 0, sizeof(info));
			len = sizeof(info);
			info.nr_jited_func_lens = n;
			info.jited_func_lens = (__u64)(unsigned long)lens;
			if (bpf_obj_get_info_by_fd(fd, &info, &len)) {
				status = "info_fail";
			} else {
				size_t o = 0;
				for (__u32 k = 0; k < n && o < sizeof(fl) - 16; k++)
					o += snprintf(fl + o, sizeof(fl) - o, "%s%u", k ? ";" : "", lens[k]);
			}
		}
		printf("prog\t%s\t%s\t%d\t%s\t%s\t%d\t%zu\t%zu\t%u\t%u\t%u\t%s\t%s\n", id, mode, idx,
		       bpf_program__name(prog), bpf_program__section_name(prog), (int)bpf_program__type(prog),
		       idx < MAXPROGS ? open_insns[idx] : 0, bpf_program__insn_cnt(prog), info.xlated_prog_len,
		       info.jited_prog_len, info.nr_jited_func_lens, fl, status);
	}
	printf("obj\t%s\t%s\t%s:%d\t%d\n", id, mode, err ? "load_fail" : "ok", err, *nprogs);
	if (err)
		dump_log(id, mode, only);
	fflush(stdout);
	bpf_object__close(obj);
	return err ? -1 : 0;
}

int main(int argc, char **argv)
{
	char line[4096];
	if (argc < 2) {
		fprintf(stderr, "usage: jitload LIST [PASSES]\n");
		return 2;
	}
	int passes = argc > 2 ? atoi(argv[2]) : 2;
	FILE *f = fopen(argv[1], "r");
	if (!f) {
		perror(argv[1]);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	libbpf_set_print(capture);
	marker_fd = open("/sys/kernel/tracing/trace_marker", O_WRONLY);
	printf("libbpf\t%d.%d\n", LIBBPF_MAJOR_VERSION, LIBBPF_MINOR_VERSION);
	for (pass = 1; pass <= passes; pass++) {
	rewind(f);
	printf("pass\t%d\n", pass);
	while (fgets(line, sizeof(line), f)) {
		char *save = NULL, *hints[16];
		int nh = 0, n = 0;
		char *id = strtok_r(line, " \n", &save);
		char *path = strtok_r(NULL, " \n", &save);
		char *h;
		if (!id || !path)
			continue;
		while (nh < 16 && (h = strtok_r(NULL, " \n", &save)))
			hints[nh++] = h;
		if (attempt(id, path, -1, hints, nh, &n) == -1)
			for (int i = 0; i < n; i++)
				attempt(id, path, i, hints, nh, &n);
	}
	}
	printf("done\n");
	return 0;
}
