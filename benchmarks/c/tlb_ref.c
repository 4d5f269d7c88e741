/*
 * tlb_ref.c -- C reference for execbench's iTLB lookup loop.
 *
 * The same model as execbench/metrics/tlbsim.py (_sim_numba / simulate_py):
 * L1 iTLB arrays (one per page-size class) + a shared second-level TLB,
 * set-associative, true LRU by last-use stamp, set = page % sets, cold start,
 * misses counted after `warm` lookups.  It exists only as a speed yardstick
 * ("lookups/s of a plain C loop") and as a cross-check of the miss counts;
 * nothing in the test suite needs it.
 *
 * usage: tlb_ref STREAM N WARM REPEAT L2_SETS L2_WAYS SETS0 WAYS0 [SETS1 WAYS1 ...]
 *   STREAM: N int64 keys followed by N int64 L1-array indices (numpy tofile).
 * prints: "m1 m2 lookups_per_s"
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAXARR 4

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void run(const int64_t *keys, const int64_t *arr, long n, long warm,
		int narr, const long *sets, const long *ways, long l2_sets, long l2_ways,
		long *out_m1, long *out_m2)
{
	int64_t *l1t[MAXARR], *l1s[MAXARR];
	int64_t *l2t = malloc(sizeof(int64_t) * l2_sets * l2_ways);
	int64_t *l2s = malloc(sizeof(int64_t) * l2_sets * l2_ways);
	long m1 = 0, m2 = 0;

	for (int a = 0; a < narr; a++) {
		l1t[a] = malloc(sizeof(int64_t) * sets[a] * ways[a]);
		l1s[a] = malloc(sizeof(int64_t) * sets[a] * ways[a]);
		memset(l1t[a], 0xff, sizeof(int64_t) * sets[a] * ways[a]);
		memset(l1s[a], 0xff, sizeof(int64_t) * sets[a] * ways[a]);
	}
	memset(l2t, 0xff, sizeof(int64_t) * l2_sets * l2_ways);
	memset(l2s, 0xff, sizeof(int64_t) * l2_sets * l2_ways);

	for (long t = 0; t < n; t++) {
		int64_t key = keys[t];
		int a = (int)arr[t];
		int64_t page = key >> 1;
		long nw = ways[a];
		int64_t *tg = l1t[a] + (page % sets[a]) * nw;
		int64_t *st = l1s[a] + (page % sets[a]) * nw;
		long victim = 0, w;
		int64_t best = st[0];
		int hit = 0, hit2 = 0;

		for (w = 0; w < nw; w++) {
			if (tg[w] == key) { st[w] = t; hit = 1; break; }
			if (st[w] < best) { best = st[w]; victim = w; }
		}
		if (hit)
			continue;
		{
			int64_t *tg2 = l2t + (page % l2_sets) * l2_ways;
			int64_t *st2 = l2s + (page % l2_sets) * l2_ways;
			long v2 = 0;
			int64_t best2 = st2[0];
			for (w = 0; w < l2_ways; w++) {
				if (tg2[w] == key) { st2[w] = t; hit2 = 1; break; }
				if (st2[w] < best2) { best2 = st2[w]; v2 = w; }
			}
			if (!hit2) { tg2[v2] = key; st2[v2] = t; }
		}
		tg[victim] = key;
		st[victim] = t;
		if (t >= warm) {
			m1++;
			if (!hit2)
				m2++;
		}
	}
	*out_m1 = m1;
	*out_m2 = m2;
	for (int a = 0; a < narr; a++) { free(l1t[a]); free(l1s[a]); }
	free(l2t);
	free(l2s);
}

int main(int argc, char **argv)
{
	if (argc < 9 || (argc - 7) % 2) {
		fprintf(stderr, "usage: %s STREAM N WARM REPEAT L2_SETS L2_WAYS SETS0 WAYS0 [SETS1 WAYS1 ...]\n", argv[0]);
		return 2;
	}
	long n = atol(argv[2]), warm = atol(argv[3]), rep = atol(argv[4]);
	long l2_sets = atol(argv[5]), l2_ways = atol(argv[6]);
	int narr = (argc - 7) / 2;
	long sets[MAXARR], ways[MAXARR];
	if (narr > MAXARR) { fprintf(stderr, "too many L1 arrays\n"); return 2; }
	for (int a = 0; a < narr; a++) {
		sets[a] = atol(argv[7 + 2 * a]);
		ways[a] = atol(argv[8 + 2 * a]);
	}
	int64_t *buf = malloc(sizeof(int64_t) * 2 * n);
	FILE *f = fopen(argv[1], "rb");
	if (!f || fread(buf, sizeof(int64_t), 2 * n, f) != (size_t)(2 * n)) {
		fprintf(stderr, "%s: cannot read %ld keys + %ld indices\n", argv[1], n, n);
		return 1;
	}
	fclose(f);
	long m1 = 0, m2 = 0;
	double t0 = now();
	for (long r = 0; r < rep; r++)
		run(buf, buf + n, n, warm, narr, sets, ways, l2_sets, l2_ways, &m1, &m2);
	double dt = now() - t0;
	printf("%ld %ld %.0f\n", m1, m2, (double)n * rep / dt);
	free(buf);
	return 0;
}
