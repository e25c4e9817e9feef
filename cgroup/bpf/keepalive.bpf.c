// SPDX-License-Identifier: MIT OR Apache-2.0 OR GPL-2.0
/*
 * The kernel door of tcp-keepalive: two cgroup BPF programs sharing one settings map.
 *
 *  - sockops: on every TCP connection made or accepted in the cgroup (and its children) caps
 *    TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT and TCP_USER_TIMEOUT (when asked for) at the
 *    operator's values, then sets SO_KEEPALIVE: before the SYN of a connection made
 *    (TCP_CONNECT_CB), once established for one accepted (PASSIVE_ESTABLISHED_CB).
 *  - cgroup/setsockopt: with enforcement on, rewrites the program's own keep-alive writes so the
 *    operator's settings stay a ceiling (docs/design.md, "Who decides", and cgroup/README.md).
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
#define IPPROTO_MPTCP 262
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

/* The one definition of the settings map value; `MapSettings` in cgroup/src/map.rs is its
 * #[repr(C)] twin, checked member by member against this object's BTF by a test there. */
#define SETTINGS_LAYOUT 1
struct settings {
	__u32 layout;		/* SETTINGS_LAYOUT once filled; 0: do nothing */
	__u32 idle_s;		/* TCP_KEEPIDLE */
	__u32 interval_s;	/* TCP_KEEPINTVL */
	__u32 count;		/* TCP_KEEPCNT */
	__u32 user_timeout_ms;	/* TCP_USER_TIMEOUT; 0: none (the socket's own stays) */
	__u32 enforce;		/* 1: cap the program's own writes (cgroup/setsockopt) */
};

/* Its twin is `MapCounters` in cgroup/src/map.rs (checked the same way); per CPU, summed by
 * user space. */
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

/* The attachment's own random number, set once when it is made: the sweep asks with it whether a
 * socket's cgroup is this attachment's or below (see enforce_keepalive). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} probe SEC(".maps");

/* setsockopt(fd, SOL_TCP, TCPKA_PROBE, &nonce, 8): no such TCP option exists (the kernel answers
 * ENOPROTOOPT); our program answers 0 instead when the nonce is its attachment's. */
#define TCPKA_PROBE 0x74636b61

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

static __always_inline void set_int(struct bpf_sock_ops *skops, int level, int name, int value)
{
	int v = value;

	/* A failure leaves the socket as it was; nothing to report from here. */
	bpf_setsockopt(skops, level, name, &v, sizeof(v));
}

/* min(v, limit) when v is inside Linux's range lo..=hi, else v (the kernel fails it, as it would). */
static __always_inline int cap(int v, int lo, int hi, __u32 limit)
{
	if (v < lo || v > hi)
		return v;
	return v < (int)limit ? v : (int)limit;
}

/* TCP_USER_TIMEOUT under the ceiling: 0 (no timeout at all) becomes ours; a negative value is
 * left for the kernel to refuse. */
static __always_inline int cap_user_timeout(int v, __u32 limit)
{
	if (v < 0)
		return v;
	return v == 0 ? (int)limit : cap(v, 1, 0x7fffffff, limit);
}

/* The socket's own value of a TCP-level option: what the program set before connect (or on the
 * listener an accepted socket inherits from), else the system default. -1 when the kernel cannot
 * say (bpf_getsockopt reads keep-alive options from Linux 6.1 on). */
static __always_inline int get_int(struct bpf_sock_ops *skops, int name)
{
	int v = -1;

	if (bpf_getsockopt(skops, SOL_TCP, name, &v, sizeof(v)) != 0)
		return -1;
	return v;
}

/* Linux's built-in timings (TCP_KEEPALIVE_TIME/INTVL/PROBES), what a socket whose program never
 * set them reads: no choice of the program's, so ours, even where ours is longer (core's
 * LINUX_DEFAULTS and KeepAlive::ceiling_over decide the sweep the same way). */
#define DEFAULT_KEEPIDLE 7200
#define DEFAULT_KEEPINTVL 75
#define DEFAULT_KEEPCNT 9

/* The smaller of the socket's own value and ours; ours where the socket's cannot be read or is
 * the built-in default. */
static __always_inline void cap_option(struct bpf_sock_ops *skops, int name, int hi, int dflt,
				       __u32 limit)
{
	int v = get_int(skops, name);

	set_int(skops, SOL_TCP, name, v < 1 || v == dflt ? (int)limit : cap(v, 1, hi, limit));
}

/* TCPKA_VARIANT: never set by build.rs. The upgrade test (cli/tests/cgroup.rs) compiles this file
 * with -DTCPKA_VARIANT=N to get "another version" of these programs: the same behaviour with one
 * instruction more (a compare with an op no kernel has), so other program tags, which is how an
 * upgrade is recognised (cgroup/src/upgrade.rs), loaded with TCP_KEEPALIVE_BPF_OBJECT. */
#ifdef TCPKA_VARIANT
#define VARIANT_OP (0x7f000000 + TCPKA_VARIANT)
#endif

SEC("sockops")
int set_keepalive(struct bpf_sock_ops *skops)
{
	__u32 op = skops->op;

#ifdef VARIANT_OP
	if (op == VARIANT_OP)
		return 1;
#endif

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
	/* The operator's values are a ceiling here too: each timing becomes the smaller of the
	 * socket's own and ours, so a program that chose shorter ones before connect (curl
	 * --keepalive-time) keeps them. The timings first, SO_KEEPALIVE last: probing never starts
	 * with half-set timings. */
	cap_option(skops, TCP_KEEPIDLE, MAX_TCP_KEEPIDLE, DEFAULT_KEEPIDLE, s->idle_s);
	cap_option(skops, TCP_KEEPINTVL, MAX_TCP_KEEPINTVL, DEFAULT_KEEPINTVL, s->interval_s);
	cap_option(skops, TCP_KEEPCNT, MAX_TCP_KEEPCNT, DEFAULT_KEEPCNT, s->count);
	if (s->user_timeout_ms) {
		int ut = get_int(skops, TCP_USER_TIMEOUT);

		set_int(skops, SOL_TCP, TCP_USER_TIMEOUT,
			cap_user_timeout(ut < 0 ? 0 : ut, s->user_timeout_ms));
	}
	set_int(skops, SOL_SOCKET, SO_KEEPALIVE, 1);
	if (op == BPF_SOCK_OPS_TCP_CONNECT_CB)
		return 1;
count:;
	struct counters *c = current_counters();
	if (c && current_settings())
		c->configured++;
	return 1;
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

#ifdef VARIANT_OP
	if (level == VARIANT_OP)
		return 1;
#endif

	/* The fast path for every other option: two compares. */
	if (level == SOL_SOCKET) {
		if (name != SO_KEEPALIVE)
			goto untouched;
	} else if (level == SOL_TCP) {
		if (name != TCP_KEEPIDLE && name != TCP_KEEPINTVL && name != TCP_KEEPCNT &&
		    name != TCP_USER_TIMEOUT) {
			if (name == TCPKA_PROBE)
				goto probe;
			goto untouched;
		}
	} else {
		goto untouched;
	}

	/* TCP, and MPTCP held to the same ceiling (as the preload does): the kernel passes an MPTCP
	 * socket's keep-alive options on to its subflows. */
	struct bpf_sock *sk = ctx->sk;
	if (!sk || (sk->protocol != IPPROTO_TCP && sk->protocol != IPPROTO_MPTCP) ||
	    sk->type != SOCK_STREAM || (sk->family != AF_INET && sk->family != AF_INET6))
		goto untouched;
	struct settings *s = current_settings();
	if (!s || !s->enforce)
		goto untouched;

	/* optval..optval_end is the kernel's copy of the caller's buffer, its first
	 * min(optlen, PAGE_SIZE) bytes. It stays the caller's when a program before us (another
	 * attachment's, on this cgroup or a child) passed the call through with optlen 0 ("use the
	 * caller's buffer"): so optlen 0 is read from there too, and rewritten with optlen 4.
	 * Shorter than an int: the kernel fails it (EINVAL), as it would have. */
	int *optval = ctx->optval;
	void *end = ctx->optval_end;
	int len = ctx->optlen;
	if ((void *)(optval + 1) > end || (len > 0 && len < (int)sizeof(int)))
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
	else if (s->user_timeout_ms)
		w = cap_user_timeout(v, s->user_timeout_ms);
	if (w == v)
		goto untouched;
	*optval = w;
	/* The kernel reads only the first int of a keep-alive option. optlen 4 makes it take our
	 * buffer: after a pass-through (optlen 0), and for a buffer larger than the page it copied,
	 * whose untouched optlen would make it use the caller's own. */
	if (len == 0 || larger_than_copied(ctx))
		ctx->optlen = sizeof(int);
	struct counters *c = current_counters();
	if (c)
		c->capped++;
	return 1;

probe:;
	/* Programs run for the cgroup of the socket (fixed when it was created), not of the caller:
	 * the sweep, outside, learns whether this socket is the attachment's or below. Any other
	 * answer leaves the call to the kernel (ENOPROTOOPT). */
	__u32 key = 0;
	__u64 *ours = bpf_map_lookup_elem(&probe, &key);
	__u64 *asked = ctx->optval;
	if (ours && *ours && ctx->optlen == sizeof(__u64) && (void *)(asked + 1) <= ctx->optval_end &&
	    *asked == *ours)
		ctx->optlen = -1; /* the kernel's "done": setsockopt returns 0 */
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
