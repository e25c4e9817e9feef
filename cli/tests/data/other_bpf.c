// SPDX-License-Identifier: MIT OR Apache-2.0 OR GPL-2.0
// Someone else's cgroup programs, for the kernel door's tests: they do nothing but exist, so a
// test can check that attaching and detaching tcp-keepalive leaves them attached.
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("sockops")
int other_sock_ops(struct bpf_sock_ops *skops)
{
	return 1;
}

SEC("cgroup/setsockopt")
int other_setsockopt(struct bpf_sockopt *ctx)
{
	ctx->optlen = 0;
	return 1;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
