// SPDX-License-Identifier: MIT OR Apache-2.0 OR GPL-2.0
/*
 * The kernel door of tcp-keepalive: two cgroup BPF programs sharing one settings map.
 *
 *  - sockops: on every TCP connection made or accepted in the cgroup (and its children) sets
 *    TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT, TCP_USER_TIMEOUT (when asked for) and then
 *    SO_KEEPALIVE: before the SYN of a connection made, once established for one accepted.
 *  - cgroup/setsockopt: with enforcement on, rewrites the program's own keep-alive writes so the
 *    operator's settings stay a ceiling (the contract C1 in DESIGN.md and cgroup/README.md).
 *
 * The settings come from user space (tcp-keepalive-cgroup's loader), validated by the core crate;
 * nothing here re-validates them beyond "the map is filled". Only UAPI headers are included, never
 * the host's libc: the object is the same for every target architecture.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* Fixed by the Linux UAPI on every architecture; libc's headers stay out of a BPF build. */
#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1
#define IPPROTO_TCP 6
#define SOL_SOCKET 1
#define SO_KEEPALIVE 9
#define SOL_TCP 6
#define TCP_KEEPIDLE 4
#define TCP_KEEPINTVL 5
#define TCP_KEEPCNT 6
#define TCP_USER_TIMEOUT 18
/* include/net/tcp.h */
#define MAX_TCP_KEEPIDLE 32767
#define MAX_TCP_KEEPINTVL 32767
#define MAX_TCP_KEEPCNT 127

/* Must match `Settings` in cgroup/src/map.rs (#[repr(C)]). */
#define SETTINGS_LAYOUT 1
struct settings {
	__u32 layout;		/* SETTINGS_LAYOUT once filled; 0: do nothing */
	__u32 idle_s;		/* TCP_KEEPIDLE */
	__u32 interval_s;	/* TCP_KEEPINTVL */
	__u32 count;		/* TCP_KEEPCNT */
	__u32 user_timeout_ms;	/* TCP_USER_TIMEOUT; 0: none (the socket's own stays) */
	__u32 enforce;		/* 1: cap the program's own writes (cgroup/setsockopt) */
};

/* Must match `Counters` in cgroup/src/map.rs; per CPU, summed by user space. */
struct counters {
	__u64 configured;	/* connections given the settings (established callbacks) */
	__u64 capped;		/* program writes rewritten by enforcement */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct settings);
} settings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct counters);
} counters SEC(".maps");

static __always_inline struct settings *current_settings(void)
{
	__u32 key = 0;
	struct settings *s = bpf_map_lookup_elem(&settings, &key);

	return s && s->layout == SETTINGS_LAYOUT ? s : 0;
}

static __always_inline struct counters *current_counters(void)
{
	__u32 key = 0;

	return bpf_map_lookup_elem(&counters, &key);
}

static __always_inline void set_int(struct bpf_sock_ops *skops, int level, int name, __u32 value)
{
	int v = (int)value;

	/* A failure leaves the socket as it was; nothing to report from here. */
	bpf_setsockopt(skops, level, name, &v, sizeof(v));
}

SEC("sockops")
int set_keepalive(struct bpf_sock_ops *skops)
{
	__u32 op = skops->op;

	/* A connection made here: before its SYN (TCP_CONNECT_CB, so the user timeout bounds the
	 * handshake too; tcp_finish_connect arms the keep-alive timer later). Its
	 * ACTIVE_ESTABLISHED_CB would only repeat the same writes (measured: a third of the cost),
	 * so it is only counted. A connection accepted here: PASSIVE_ESTABLISHED_CB (listening
	 * sockets are never seen). */
	if (op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB)
		goto count;
	if (op != BPF_SOCK_OPS_TCP_CONNECT_CB && op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
		return 1;
	struct settings *s = current_settings();
	if (!s)
		return 1;
	/* The timings first, SO_KEEPALIVE last: probing never starts with half-set timings. */
	set_int(skops, SOL_TCP, TCP_KEEPIDLE, s->idle_s);
	set_int(skops, SOL_TCP, TCP_KEEPINTVL, s->interval_s);
	set_int(skops, SOL_TCP, TCP_KEEPCNT, s->count);
	if (s->user_timeout_ms)
		set_int(skops, SOL_TCP, TCP_USER_TIMEOUT, s->user_timeout_ms);
	set_int(skops, SOL_SOCKET, SO_KEEPALIVE, 1);
	if (op == BPF_SOCK_OPS_TCP_CONNECT_CB)
		return 1;
count:;
	struct counters *c = current_counters();
	if (c && current_settings())
		c->configured++;
	return 1;
}

/* min(v, limit) when v is inside Linux's range lo..=hi, else v (the kernel fails it, as it would). */
static __always_inline int cap(int v, int lo, int hi, __u32 limit)
{
	if (v < lo || v > hi)
		return v;
	return v < (int)limit ? v : (int)limit;
}

/* Whether optlen exceeds the buffer the kernel copied for us: min(optlen, PAGE_SIZE). Told
 * with constant offsets only (4, 16 and 64 KiB pages): a variable one, or subtracting the two
 * pointers, would need CAP_PERFMON to pass the verifier; CAP_BPF + CAP_NET_ADMIN are enough
 * for this. */
static __always_inline int larger_than_copied(struct bpf_sockopt *ctx)
{
	int len = ctx->optlen;
	void *end = ctx->optval_end;

	if (len <= 4096) /* every page is at least 4 KiB */
		return 0;
	/* Both tests made before choosing, and kept apart by the empty asm: clang would otherwise
	 * select the constant first and add a register, which the verifier refuses. */
	int copied_under_4k = ctx->optval + 4097 > end;
	int copied_under_16k = ctx->optval + 16385 > end;
	asm volatile("" : "+r"(copied_under_4k), "+r"(copied_under_16k));
	if (len <= 16384) /* copied whole unless pages are 4 KiB */
		return copied_under_4k;
	if (len <= 65536) /* copied whole only with 64 KiB pages */
		return copied_under_16k;
	return 1;
}

SEC("cgroup/setsockopt")
int enforce_keepalive(struct bpf_sockopt *ctx)
{
	int level = ctx->level;
	int name = ctx->optname;

	/* The fast path for every other option: two compares. */
	if (level == SOL_SOCKET) {
		if (name != SO_KEEPALIVE)
			goto untouched;
	} else if (level == SOL_TCP) {
		if (name != TCP_KEEPIDLE && name != TCP_KEEPINTVL && name != TCP_KEEPCNT &&
		    name != TCP_USER_TIMEOUT)
			goto untouched;
	} else {
		goto untouched;
	}

	struct bpf_sock *sk = ctx->sk;
	if (!sk || sk->protocol != IPPROTO_TCP || sk->type != SOCK_STREAM ||
	    (sk->family != AF_INET && sk->family != AF_INET6))
		goto untouched;
	struct settings *s = current_settings();
	if (!s || !s->enforce)
		goto untouched;

	int *optval = ctx->optval;
	void *end = ctx->optval_end;
	/* Shorter than an int: the kernel fails it (EINVAL), as it would have. Longer than the
	 * page the kernel copied for us: passed untouched (optlen 0 below keeps the program's own
	 * buffer). */
	if (ctx->optlen < (int)sizeof(int) || (void *)(optval + 1) > end || larger_than_copied(ctx))
		goto untouched;

	int v = *optval;
	int w = v;

	if (level == SOL_SOCKET)
		w = 1;
	else if (name == TCP_KEEPIDLE)
		w = cap(v, 1, MAX_TCP_KEEPIDLE, s->idle_s);
	else if (name == TCP_KEEPINTVL)
		w = cap(v, 1, MAX_TCP_KEEPINTVL, s->interval_s);
	else if (name == TCP_KEEPCNT)
		w = cap(v, 1, MAX_TCP_KEEPCNT, s->count);
	else if (s->user_timeout_ms && v >= 0)
		/* 0 asks for no timeout at all: the operator's bounds it. */
		w = v == 0 ? (int)s->user_timeout_ms : cap(v, 1, 0x7fffffff, s->user_timeout_ms);
	if (w == v)
		goto untouched;
	*optval = w;
	struct counters *c = current_counters();
	if (c)
		c->capped++;
	return 1;

untouched:
	/* Leave ctx as the programs before us (ours in an inner cgroup, anyone's) left it: optlen 0
	 * would tell the kernel to use the caller's original buffer and undo their rewrites. Only an
	 * optval larger than the page the kernel copied gets optlen 0, so that it passes through
	 * whole instead of failing with EFAULT (kernels before 6.5). */
	if (larger_than_copied(ctx))
		ctx->optlen = 0;
	return 1;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
