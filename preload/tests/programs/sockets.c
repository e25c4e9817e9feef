/* A plain C program that calls socket() the ways real programs do and prints what the kernel
   says about each socket (getsockopt), so a test can run it with and without libkeepalive.so and
   compare. It knows nothing about the preload.

   Usage: sockets cases | one | threads N M | fork | listen | seccomp | emfile | enforce |
                  table KIND LEVEL NAME VALUE OPTLEN... | stderr-closed | fd2-connection |
                  sigpipe | signals N [denied]

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
#include <signal.h>
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
static int deny_setsockopt(void);

static int seccomp_denied(void) {
    if (deny_setsockopt()) {
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

/* ---- enforcement: the program's own setsockopt calls on its sockets ---- */

/* One line after a program write: NAME set=ok|fail errno=E ka=.. idle=.. intvl=.. cnt=.. ut=..
   (errno is 777 when the call left it alone). */
static void report_set(const char *name, int fd, int rc, int err) {
    char ka[16], idle[16], intvl[16], cnt[16], ut[16];
    opt(ka, sizeof ka, fd, SOL_SOCKET, SO_KEEPALIVE);
    opt(idle, sizeof idle, fd, IPPROTO_TCP, TCP_KEEPIDLE);
    opt(intvl, sizeof intvl, fd, IPPROTO_TCP, TCP_KEEPINTVL);
    opt(cnt, sizeof cnt, fd, IPPROTO_TCP, TCP_KEEPCNT);
    opt(ut, sizeof ut, fd, IPPROTO_TCP, TCP_USER_TIMEOUT);
    printf("%s set=%s errno=%d ka=%s idle=%s intvl=%s cnt=%s ut=%s\n", name, rc == 0 ? "ok" : "fail",
           err, ka, idle, intvl, cnt, ut);
}

/* setsockopt with errno set to 777 first; returns rc, stores errno in *err. */
static int try_set(int fd, int level, int name, const void *value, socklen_t len, int *err) {
    errno = 777;
    int rc = setsockopt(fd, level, name, value, len);
    *err = errno;
    return rc;
}

static int deny_setsockopt(void);

struct set_case { const char *name; int level; int option; int value; };

static int enforce_cases(void) {
    static const struct set_case all[] = {
        {"ka-off", SOL_SOCKET, SO_KEEPALIVE, 0},
        {"ka-on", SOL_SOCKET, SO_KEEPALIVE, 1},
        {"ka-two", SOL_SOCKET, SO_KEEPALIVE, 2},
        {"ka-negative", SOL_SOCKET, SO_KEEPALIVE, -1},
        {"idle-longer", IPPROTO_TCP, TCP_KEEPIDLE, 7200},
        {"idle-shorter", IPPROTO_TCP, TCP_KEEPIDLE, 30},
        {"idle-max", IPPROTO_TCP, TCP_KEEPIDLE, 32767},
        {"idle-zero", IPPROTO_TCP, TCP_KEEPIDLE, 0},
        {"idle-too-big", IPPROTO_TCP, TCP_KEEPIDLE, 32768},
        {"idle-negative", IPPROTO_TCP, TCP_KEEPIDLE, -5},
        {"intvl-longer", IPPROTO_TCP, TCP_KEEPINTVL, 75},
        {"intvl-shorter", IPPROTO_TCP, TCP_KEEPINTVL, 4},
        {"intvl-zero", IPPROTO_TCP, TCP_KEEPINTVL, 0},
        {"cnt-longer", IPPROTO_TCP, TCP_KEEPCNT, 9},
        {"cnt-shorter", IPPROTO_TCP, TCP_KEEPCNT, 2},
        {"cnt-too-big", IPPROTO_TCP, TCP_KEEPCNT, 128},
        {"cnt-zero", IPPROTO_TCP, TCP_KEEPCNT, 0},
        {"ut-zero", IPPROTO_TCP, TCP_USER_TIMEOUT, 0},
        {"ut-longer", IPPROTO_TCP, TCP_USER_TIMEOUT, 100000},
        {"ut-shorter", IPPROTO_TCP, TCP_USER_TIMEOUT, 1000},
        {"ut-negative", IPPROTO_TCP, TCP_USER_TIMEOUT, -1},
    };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        int fd = socket(i % 2 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), err;
        int rc = try_set(fd, all[i].level, all[i].option, &all[i].value, sizeof(int), &err);
        report_set(all[i].name, fd, rc, err);
        close(fd);
    }
    int fd, err, rc, v;
    /* Go's way after connect: SO_KEEPALIVE 1, then 15/15/9. */
    fd = socket(AF_INET, SOCK_STREAM, 0);
    static const int go[][3] = {{SOL_SOCKET, SO_KEEPALIVE, 1}, {IPPROTO_TCP, TCP_KEEPIDLE, 15},
                                {IPPROTO_TCP, TCP_KEEPINTVL, 15}, {IPPROTO_TCP, TCP_KEEPCNT, 9}};
    for (int i = 0; i < 4; i++) rc = try_set(fd, go[i][0], go[i][1], &go[i][2], sizeof(int), &err);
    report_set("go-defaults", fd, rc, err);
    close(fd);
    /* A longer optval (8 bytes) is as valid as an int. */
    fd = socket(AF_INET, SOCK_STREAM, 0);
    long long wide = 0;
    rc = try_set(fd, SOL_SOCKET, SO_KEEPALIVE, &wide, sizeof wide, &err);
    report_set("ka-off-wide", fd, rc, err);
    close(fd);
    /* optlen < sizeof(int): the kernel's EINVAL, nothing changed. */
    fd = socket(AF_INET, SOCK_STREAM, 0);
    short narrow = 0;
    rc = try_set(fd, SOL_SOCKET, SO_KEEPALIVE, &narrow, sizeof narrow, &err);
    report_set("ka-off-narrow", fd, rc, err);
    close(fd);
    /* A bad pointer: the kernel's EFAULT, no crash (the hook never reads it). */
    fd = socket(AF_INET, SOCK_STREAM, 0);
    rc = try_set(fd, IPPROTO_TCP, TCP_KEEPIDLE, (const void *)16, sizeof(int), &err);
    report_set("idle-efault", fd, rc, err);
    close(fd);
    /* Another option on one of our sockets: untouched, read back. */
    fd = socket(AF_INET, SOCK_STREAM, 0);
    v = 1;
    rc = try_set(fd, IPPROTO_TCP, TCP_NODELAY, &v, sizeof v, &err);
    char nodelay[16];
    opt(nodelay, sizeof nodelay, fd, IPPROTO_TCP, TCP_NODELAY);
    printf("nodelay set=%s errno=%d nodelay=%s\n", rc == 0 ? "ok" : "fail", err, nodelay);
    close(fd);
    /* Not TCP: UDP, Unix-domain; SO_KEEPALIVE 1 then 0 must stay 0. */
    static const int others[][2] = {{AF_INET, SOCK_DGRAM}, {AF_INET6, SOCK_DGRAM}, {AF_UNIX, SOCK_STREAM}};
    static const char *other_names[] = {"udp4", "udp6", "unix-stream"};
    for (int i = 0; i < 3; i++) {
        fd = socket(others[i][0], others[i][1], 0);
        v = 1;
        try_set(fd, SOL_SOCKET, SO_KEEPALIVE, &v, sizeof v, &err);
        v = 0;
        rc = try_set(fd, SOL_SOCKET, SO_KEEPALIVE, &v, sizeof v, &err);
        char ka[16];
        opt(ka, sizeof ka, fd, SOL_SOCKET, SO_KEEPALIVE);
        int v2 = 7200, err2;
        int rc2 = try_set(fd, IPPROTO_TCP, TCP_KEEPIDLE, &v2, sizeof v2, &err2);
        printf("%s-ka-off set=%s errno=%d ka=%s idle-set=%s idle-errno=%d\n", other_names[i],
               rc == 0 ? "ok" : "fail", err, ka, rc2 == 0 ? "ok" : "fail", err2);
        close(fd);
    }
    /* A TCP socket the hook never saw (a raw system call, as Go makes them): the program wins. */
    /* (At a number none of ours ever had: see tracked.rs on numbers reused behind our back.) */
    int raw = (int)syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
    fd = fcntl(raw, F_DUPFD, 62);
    close(raw);
    v = 0;
    rc = try_set(fd, SOL_SOCKET, SO_KEEPALIVE, &v, sizeof v, &err);
    report_set("raw-syscall-ka-off", fd, rc, err);
    close(fd);
    /* A number reused: one of our sockets closed, a UDP socket made behind the hook's back gets
       the same number; its SO_KEEPALIVE stays the program's. */
    fd = socket(AF_INET, SOCK_STREAM, 0);
    close(fd);
    int reused = (int)syscall(SYS_socket, AF_INET, SOCK_DGRAM, 0);
    v = 1;
    try_set(reused, SOL_SOCKET, SO_KEEPALIVE, &v, sizeof v, &err);
    v = 0;
    rc = try_set(reused, SOL_SOCKET, SO_KEEPALIVE, &v, sizeof v, &err);
    char ka[16];
    opt(ka, sizeof ka, reused, SOL_SOCKET, SO_KEEPALIVE);
    printf("reused-by-udp same=%d set=%s errno=%d ka=%s\n", reused == fd, rc == 0 ? "ok" : "fail", err, ka);
    close(reused);
    /* A duplicate of one of our sockets is ours (dup, dup2, dup3). */
    for (int i = 0; i < 3; i++) {
        static const char *dup_names[] = {"dup-ka-off", "dup2-ka-off", "dup3-ka-off"};
        fd = socket(AF_INET, SOCK_STREAM, 0);
        int d = i == 0 ? dup(fd) : i == 1 ? dup2(fd, 40) : dup3(fd, 41, O_CLOEXEC);
        v = 0;
        rc = try_set(d, SOL_SOCKET, SO_KEEPALIVE, &v, sizeof v, &err);
        report_set(dup_names[i], d, rc, err);
        close(d);
        close(fd);
    }
    /* A vfork child shares our memory (and so the preload's table) but has its own descriptors:
       its dup2 over the number of one of our sockets must not make that socket not ours in the
       parent (issue 16, item 10). The parent's own writes afterwards are still enforced. */
    for (int i = 0; i < 2; i++) {
        static const char *vfork_names[] = {"vfork-dup2-ka-off", "vfork-dup2-idle-longer"};
        fd = socket(AF_INET, SOCK_STREAM, 0);
        /* At a number none of ours ever had (so the table has no stale bit for it). */
        int made = (int)syscall(SYS_socket, AF_INET, SOCK_DGRAM, 0);
        int other = fcntl(made, F_DUPFD, 70);
        close(made);
        pid_t child = vfork();
        if (child == 0) {
            dup2(other, fd);
            _exit(0);
        }
        int status = 0;
        if (child > 0) waitpid(child, &status, 0);
        close(other);
        v = i == 0 ? 0 : 999;
        rc = i == 0 ? try_set(fd, SOL_SOCKET, SO_KEEPALIVE, &v, sizeof v, &err)
                    : try_set(fd, IPPROTO_TCP, TCP_KEEPIDLE, &v, sizeof v, &err);
        report_set(vfork_names[i], fd, rc, err);
        close(fd);
    }
    /* The same through the hooks that clear a bit on their cold paths: a vfork child closes the
       number of one of our sockets and makes a socket there itself, a UDP one (not ours, so
       forgotten) or a TCP one whose configuration fails (its setsockopt denied by a seccomp filter
       in the child alone): the parent's socket at that number is still ours. */
    for (int i = 0; i < 2; i++) {
        static const char *reuse_names[] = {"vfork-udp-ka-off", "vfork-failed-ka-off"};
        fd = socket(AF_INET, SOCK_STREAM, 0);
        pid_t child = vfork();
        if (child == 0) {
            if (i == 1 && deny_setsockopt()) _exit(3);
            close(fd);
            /* The lowest free number: fill lower holes until the socket lands on fd (bounded). */
            for (int n = 0; n < 64; n++) {
                int s = i == 0 ? socket(AF_INET, SOCK_DGRAM, 0) : socket(AF_INET, SOCK_STREAM, 0);
                if (s == fd) _exit(0);
                if (s < 0 || s > fd) _exit(4);
            }
            _exit(5);
        }
        int status = -1;
        if (child > 0) waitpid(child, &status, 0);
        v = 0;
        rc = try_set(fd, SOL_SOCKET, SO_KEEPALIVE, &v, sizeof v, &err);
        report_set(reuse_names[i], fd, rc, err);
        printf("%s-child status=%d\n", reuse_names[i], status);
        close(fd);
    }
    /* One of our numbers overwritten by dup2 with a TCP socket the hook never saw: not ours. */
    fd = socket(AF_INET, SOCK_STREAM, 0);
    /* Moved to a number no socket of ours ever had (the lowest free one may have had one). */
    int made = (int)syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
    int foreign = fcntl(made, F_DUPFD, 60);
    close(made);
    dup2(foreign, fd);
    close(foreign);
    v = 0;
    rc = try_set(fd, SOL_SOCKET, SO_KEEPALIVE, &v, sizeof v, &err);
    report_set("dup2-over-ours-ka-off", fd, rc, err);
    close(fd);
    /* Accepted sockets of one of our listeners, with accept and accept4. */
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
    for (int i = 0; i < 2; i++) {
        int c = (int)syscall(SYS_socket, AF_INET6, SOCK_STREAM, 0);
        if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof a)) { perror("connect"); return 2; }
        int s = i == 0 ? accept(l, NULL, NULL) : accept4(l, NULL, NULL, SOCK_CLOEXEC);
        v = 0;
        rc = try_set(s, SOL_SOCKET, SO_KEEPALIVE, &v, sizeof v, &err);
        report_set(i == 0 ? "accepted-ka-off" : "accepted4-ka-off", s, rc, err);
        v = 7200;
        rc = try_set(s, IPPROTO_TCP, TCP_KEEPIDLE, &v, sizeof v, &err);
        report_set(i == 0 ? "accepted-idle-longer" : "accepted4-idle-longer", s, rc, err);
        close(s);
        close(c);
    }
    close(l);
    return 0;
}

/* The shared enforcement table's `write` rows (core/tests/data/enforce-cases.tsv): `table` then
   five arguments per row, KIND (tcp or mptcp) LEVEL NAME REQUESTED OPTLEN. For each row a new
   AF_INET socket of that kind through socket(), one setsockopt of an OPTLEN-byte buffer (the int
   first, zeros after, as the table says), then the option's value read back from the kernel.
   Prints "rowI set=ok|fail errno=E value=V" per row (I counts from 0; errno 777 = untouched), or
   "rowI socket=fail errno=E" when the socket could not be made. */
static int table_rows(int argc, char **argv) {
    for (int i = 0; i + 5 <= argc; i += 5) {
        int row = i / 5;
        int mptcp = !strcmp(argv[i], "mptcp");
        int level = atoi(argv[i + 1]), name = atoi(argv[i + 2]);
        int requested = (int)strtol(argv[i + 3], NULL, 10);
        size_t optlen = strtoul(argv[i + 4], NULL, 10);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, mptcp ? IPPROTO_MPTCP : 0);
        if (fd < 0) {
            printf("row%d socket=fail errno=%d\n", row, errno);
            continue;
        }
        char *buf = calloc(1, optlen < sizeof(int) ? sizeof(int) : optlen);
        if (!buf) { perror("calloc"); return 2; }
        memcpy(buf, &requested, sizeof requested);
        int err;
        int rc = try_set(fd, level, name, buf, (socklen_t)optlen, &err);
        char value[16];
        opt(value, sizeof value, fd, level, name);
        printf("row%d set=%s errno=%d value=%s\n", row, rc == 0 ? "ok" : "fail", err, value);
        free(buf);
        close(fd);
    }
    return 0;
}

/* ---- never harm the host ---- */

/* Bytes waiting on `fd` (non-blocking), after a short wait for stragglers. */
static long pending_bytes(int fd) {
    usleep(100 * 1000);
    char buf[4096];
    long total = 0;
    for (int i = 0; i < 64; i++) {
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n <= 0) break;
        total += n;
    }
    return total;
}

/* A connected pair on loopback: *client through socket() (the hook), *server accepted from a
   listener made with a raw system call. */
static int connected_pair(int *client, int *server) {
    int l = (int)syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 4) ||
        getsockname(l, (struct sockaddr *)&a, &al))
        return -1;
    *client = socket(AF_INET, SOCK_STREAM, 0);
    if (*client < 0 || connect(*client, (struct sockaddr *)&a, sizeof a)) return -1;
    *server = (int)syscall(SYS_accept4, l, NULL, NULL, 0);
    close(l);
    return *server < 0 ? -1 : 0;
}

/* Started with fd 2 closed: the first TCP socket is fd 2. More sockets are made (each would get
   a log line with TCP_KEEPALIVE_LOG=1); the peer must receive nothing and no SIGPIPE may kill
   us. Prints "client-fd=N peer-received=N". */
static int stderr_closed(void) {
    int client, server;
    /* The listener would take fd 2 itself (the lowest free number): move it up first, so the
       client made through socket() is the one that becomes fd 2. */
    int l = (int)syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
    int high = fcntl(l, F_DUPFD, 50);
    close(l);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (high < 0 || bind(high, (struct sockaddr *)&a, sizeof a) || listen(high, 4) ||
        getsockname(high, (struct sockaddr *)&a, &al)) { perror("listen"); return 2; }
    client = socket(AF_INET, SOCK_STREAM, 0);
    if (client < 0 || connect(client, (struct sockaddr *)&a, sizeof a)) { perror("connect"); return 2; }
    server = (int)syscall(SYS_accept4, high, NULL, NULL, 0);
    for (int i = 0; i < 3; i++) close(socket(AF_INET6, SOCK_STREAM, 0));
    printf("client-fd=%d peer-received=%ld\n", client, pending_bytes(server));
    return 0;
}

/* SIGPIPE ignored, then one of our connections put at fd 2 (dup2): the log lines of the next
   sockets must not reach its peer. Prints "peer-received=N". */
static int fd2_connection(void) {
    int client, server;
    signal(SIGPIPE, SIG_IGN);
    if (connected_pair(&client, &server)) { perror("pair"); return 2; }
    dup2(client, 2);
    for (int i = 0; i < 3; i++) close(socket(AF_INET, SOCK_STREAM, 0));
    printf("peer-received=%ld\n", pending_bytes(server));
    return 0;
}

static int sigpipe_is_pending(void) {
    sigset_t pending;
    sigpending(&pending);
    return sigismember(&pending, SIGPIPE);
}

/* stderr is a pipe whose reader is gone (the test arranges it). SIGPIPE keeps its default action
   (death) for the first socket; then, with SIGPIPE blocked, a socket must leave none pending,
   and one the program raised itself must still be pending afterwards.
   Prints "survived=1 pending-after-ours=0 own-still-pending=1". */
static int sigpipe(void) {
    close(socket(AF_INET, SOCK_STREAM, 0));
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    sigprocmask(SIG_BLOCK, &set, NULL);
    close(socket(AF_INET, SOCK_STREAM, 0));
    int ours = sigpipe_is_pending();
    raise(SIGPIPE);
    close(socket(AF_INET, SOCK_STREAM, 0));
    int own = sigpipe_is_pending();
    printf("survived=1 pending-after-ours=%d own-still-pending=%d\n", ours, own);
    return 0;
}

/* ---- signal handlers ---- */

static volatile sig_atomic_t handled, enforced_ok, stop_churn;

/* Makes every setsockopt of this process fail with EPERM (a seccomp filter). */
static int deny_setsockopt(void) {
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_setsockopt, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {sizeof filter / sizeof filter[0], filter};
    return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

/* socket() and setsockopt() from a signal handler, interrupting a thread that is inside malloc
   and free most of the time: a hook that allocated or locked would deadlock here. */
static void handler(int sig) {
    (void)sig;
    int saved = errno;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int off = 0, ka = 0;
    socklen_t len = sizeof ka;
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &off, sizeof off);
    getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &ka, &len);
    if (fd >= 0 && ka == 1) enforced_ok++;
    close(fd);
    handled++;
    errno = saved;
}

static void *churn(void *arg) {
    (void)arg;
    while (!stop_churn) {
        void *p[16];
        for (int i = 0; i < 16; i++) p[i] = malloc(64 + i * 512);
        for (int i = 0; i < 16; i++) free(p[i]);
    }
    return NULL;
}

/* With `denied`, every setsockopt fails: the hook's failure path runs in the handler. */
static int signals(int n, int denied) {
    if (denied && deny_setsockopt()) { perror("seccomp"); return 2; }
    struct sigaction sa = {0};
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
    pthread_t t;
    pthread_create(&t, NULL, churn, NULL);
    for (int i = 0; i < n; i++) {
        int before = handled;
        pthread_kill(t, SIGUSR1);
        /* Bounded wait for the handler (10 s per signal at most). */
        for (int w = 0; handled == before && w < 100000; w++) usleep(100);
        if (handled == before) { printf("signal %d not handled\n", i); return 3; }
    }
    stop_churn = 1;
    pthread_join(t, NULL);
    printf("handled=%d enforced=%d\n", (int)handled, (int)enforced_ok);
    return 0;
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
    if (argc >= 2 && !strcmp(argv[1], "enforce")) return enforce_cases();
    if (argc >= 2 && !strcmp(argv[1], "table")) return table_rows(argc - 2, argv + 2);
    if (argc >= 2 && !strcmp(argv[1], "stderr-closed")) return stderr_closed();
    if (argc >= 2 && !strcmp(argv[1], "fd2-connection")) return fd2_connection();
    if (argc >= 2 && !strcmp(argv[1], "sigpipe")) return sigpipe();
    if (argc >= 3 && !strcmp(argv[1], "signals"))
        return signals(atoi(argv[2]), argc >= 4 && !strcmp(argv[3], "denied"));
    fprintf(stderr, "usage: %s cases|one|threads N M|fork|listen|seccomp|emfile|enforce|"
                    "stderr-closed|fd2-connection|sigpipe|signals N [denied]\n", argv[0]);
    return 2;
}
