/* A plain C program that calls socket() the ways real programs do and prints what the kernel
   says about each socket (getsockopt), so a test can run it with and without libkeepalive.so and
   compare. It knows nothing about the preload.

   Usage: sockets cases | one | threads N M | fork | listen | seccomp | emfile

   One line per socket:
   NAME ret=ok|fail errno=E ka=V idle=V intvl=V cnt=V ut=V cloexec=0|1 nonblock=0|1
   where V is a number or "e<errno>" when getsockopt failed. errno is set to 777 before every
   socket() call, so "errno=777" after a success means the call left errno alone. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef IPPROTO_MPTCP
#define IPPROTO_MPTCP 262
#endif

static void opt(char *out, size_t len, int fd, int level, int name) {
    int v = 0;
    socklen_t l = sizeof v;
    if (getsockopt(fd, level, name, &v, &l) == 0)
        snprintf(out, len, "%d", v);
    else
        snprintf(out, len, "e%d", errno);
}

/* Formats the line for a socket() result into buf. */
static void describe(char *buf, size_t len, const char *name, int fd, int err) {
    if (fd < 0) {
        snprintf(buf, len, "%s ret=fail errno=%d\n", name, err);
        return;
    }
    char ka[16], idle[16], intvl[16], cnt[16], ut[16];
    opt(ka, sizeof ka, fd, SOL_SOCKET, SO_KEEPALIVE);
    opt(idle, sizeof idle, fd, IPPROTO_TCP, TCP_KEEPIDLE);
    opt(intvl, sizeof intvl, fd, IPPROTO_TCP, TCP_KEEPINTVL);
    opt(cnt, sizeof cnt, fd, IPPROTO_TCP, TCP_KEEPCNT);
    opt(ut, sizeof ut, fd, IPPROTO_TCP, TCP_USER_TIMEOUT);
    int cloexec = (fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0;
    int nonblock = (fcntl(fd, F_GETFL) & O_NONBLOCK) != 0;
    snprintf(buf, len, "%s ret=ok errno=%d ka=%s idle=%s intvl=%s cnt=%s ut=%s cloexec=%d nonblock=%d\n",
             name, err, ka, idle, intvl, cnt, ut, cloexec, nonblock);
}

static void try_socket(const char *name, int domain, int type, int protocol) {
    errno = 777;
    int fd = socket(domain, type, protocol);
    int err = errno;
    char line[256];
    describe(line, sizeof line, name, fd, err);
    fputs(line, stdout);
    if (fd >= 0) close(fd);
}

struct tcp_case { const char *name; int domain; int type; int protocol; };

static int cases(void) {
    static const struct tcp_case all[] = {
        /* TCP: must be configured, with every flag combination and both protocol spellings. */
        {"tcp4", AF_INET, SOCK_STREAM, 0},
        {"tcp4-cloexec", AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0},
        {"tcp4-nonblock", AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0},
        {"tcp4-cloexec-nonblock", AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0},
        {"tcp4-ipproto", AF_INET, SOCK_STREAM, IPPROTO_TCP},
        {"tcp4-ipproto-cloexec-nonblock", AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_TCP},
        {"tcp6", AF_INET6, SOCK_STREAM, 0},
        {"tcp6-cloexec", AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0},
        {"tcp6-nonblock", AF_INET6, SOCK_STREAM | SOCK_NONBLOCK, 0},
        {"tcp6-cloexec-nonblock", AF_INET6, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0},
        {"tcp6-ipproto", AF_INET6, SOCK_STREAM, IPPROTO_TCP},
        {"tcp6-ipproto-cloexec-nonblock", AF_INET6, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_TCP},
        /* MPTCP: configured too where the kernel has it (see README). */
        {"mptcp4", AF_INET, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_MPTCP},
        {"mptcp6", AF_INET6, SOCK_STREAM, IPPROTO_MPTCP},
        /* Everything else: must be left exactly as the kernel made it. */
        {"udp4", AF_INET, SOCK_DGRAM, 0},
        {"udp4-ipproto-cloexec-nonblock", AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_UDP},
        {"udp6", AF_INET6, SOCK_DGRAM, 0},
        {"raw4-tcp", AF_INET, SOCK_RAW, IPPROTO_TCP},
        {"raw6-tcp", AF_INET6, SOCK_RAW, IPPROTO_TCP},
        {"seqpacket4", AF_INET, SOCK_SEQPACKET, 0},
        {"sctp4-stream", AF_INET, SOCK_STREAM, IPPROTO_SCTP},
        {"unix-stream", AF_UNIX, SOCK_STREAM, 0},
        {"unix-stream-cloexec-nonblock", AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0},
        {"unix-dgram", AF_UNIX, SOCK_DGRAM, 0},
        {"unix-seqpacket", AF_UNIX, SOCK_SEQPACKET, 0},
        /* Calls that fail: return value and errno must be the kernel's. */
        {"fail-stream-udp", AF_INET, SOCK_STREAM, IPPROTO_UDP},
        {"fail-bad-type", AF_INET, 0xe, 0},
        {"fail-bad-flag", AF_INET, SOCK_STREAM | 0x40000000, 0},
        {"fail-bad-family", 9999, SOCK_STREAM, 0},
    };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        try_socket(all[i].name, all[i].domain, all[i].type, all[i].protocol);
    return 0;
}

/* TCP arguments, but the call fails (no descriptor left): EMFILE must come through unchanged. */
static int emfile(void) {
    struct rlimit rl = {0, 0};
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = 3; /* 0, 1, 2 are taken */
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) { perror("setrlimit"); return 2; }
    try_socket("tcp4-emfile", AF_INET, SOCK_STREAM, 0);
    try_socket("tcp6-emfile", AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    return 0;
}

/* setsockopt fails with EPERM for this process (a seccomp filter): the socket must still be
   returned, with errno as socket() left it. */
static int seccomp_denied(void) {
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_setsockopt, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {sizeof filter / sizeof filter[0], filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
        perror("seccomp");
        return 2;
    }
    try_socket("tcp4-setsockopt-denied", AF_INET, SOCK_STREAM, 0);
    return 0;
}

/* A listening socket configured by the hook; the socket accept() returns is made by the kernel,
   not by socket(), so its values can only come from the listener. */
static int listen_accept(void) {
    int l = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 a = {0};
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_loopback;
    socklen_t al = sizeof a;
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 4) ||
        getsockname(l, (struct sockaddr *)&a, &al)) {
        perror("listen");
        return 2;
    }
    /* The connecting side goes around libc's socket() (a raw system call, as Go does), so it is
       not configured: only the accepted side is. */
    int c = (int)syscall(SYS_socket, AF_INET6, SOCK_STREAM, 0);
    if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof a)) { perror("connect"); return 2; }
    errno = 777;
    int s = accept(l, NULL, NULL);
    int err = errno;
    char line[256];
    describe(line, sizeof line, "accepted", s, err);
    fputs(line, stdout);
    describe(line, sizeof line, "raw-syscall-client", c, 777);
    fputs(line, stdout);
    return 0;
}

static pthread_barrier_t start;
static int per_thread;

static void *worker(void *arg) {
    char *out = arg;
    pthread_barrier_wait(&start);
    size_t used = 0;
    out[0] = 0;
    for (int i = 0; i < per_thread; i++) {
        errno = 777;
        int fd = socket(i % 2 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int err = errno;
        char line[256];
        describe(line, sizeof line, i % 2 ? "thread-tcp6" : "thread-tcp4", fd, err);
        if (fd >= 0) close(fd);
        size_t n = strlen(line);
        memcpy(out + used, line, n + 1);
        used += n;
    }
    return NULL;
}

/* N threads released together, each creating M sockets: the first calls race the lazy dlsym. */
static int threads(int n, int m) {
    pthread_t t[64];
    char *out[64];
    if (n < 1 || n > 64 || m < 1 || m > 200) return 2;
    per_thread = m;
    pthread_barrier_init(&start, NULL, (unsigned)n);
    for (int i = 0; i < n; i++) {
        out[i] = malloc((size_t)m * 256);
        pthread_create(&t[i], NULL, worker, out[i]);
    }
    for (int i = 0; i < n; i++) {
        pthread_join(t[i], NULL);
        fputs(out[i], stdout);
        free(out[i]);
    }
    return 0;
}

/* Creates sockets in a forked child, in an exec'd program and in the parent. */
static int fork_exec(const char *self) {
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        try_socket("forked-child", AF_INET, SOCK_STREAM, 0);
        fflush(stdout);
        execl(self, self, "one", (char *)NULL);
        _exit(3);
    }
    int status = 0;
    waitpid(child, &status, 0);
    try_socket("parent", AF_INET6, SOCK_STREAM, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 4;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 2 && !strcmp(argv[1], "cases")) return cases();
    if (argc >= 2 && !strcmp(argv[1], "one")) { try_socket("exec-child", AF_INET, SOCK_STREAM, 0); return 0; }
    if (argc >= 4 && !strcmp(argv[1], "threads")) return threads(atoi(argv[2]), atoi(argv[3]));
    if (argc >= 2 && !strcmp(argv[1], "fork")) return fork_exec(argv[0]);
    if (argc >= 2 && !strcmp(argv[1], "listen")) return listen_accept();
    if (argc >= 2 && !strcmp(argv[1], "seccomp")) return seccomp_denied();
    if (argc >= 2 && !strcmp(argv[1], "emfile")) return emfile();
    fprintf(stderr, "usage: %s cases|one|threads N M|fork|listen|seccomp|emfile\n", argv[0]);
    return 2;
}
