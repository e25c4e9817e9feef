/* The preload's cost, side by side in one process. Run under LD_PRELOAD=libkeepalive.so (with no
   TCP_KEEPALIVE* variables, so it applies its defaults 60/10/6). In small interleaved batches it
   creates and closes TCP sockets three ways:
     bare     libc's own socket() (found with dlopen("libc.so.6")), then close()
     preload  socket() as the program sees it, i.e. libkeepalive.so's hook, then close()
     by hand  libc's socket() + the four setsockopt calls the hook makes (TCP_KEEPIDLE 60,
              TCP_KEEPINTVL 10, TCP_KEEPCNT 6, SO_KEEPALIVE 1) through libc's own setsockopt
              (the program's `setsockopt` is the preload's hook now), then close()
   All three go through a function pointer, so call overhead is the same. Interleaving batches of
   a few thousand sockets spreads the noise of a shared machine evenly over the three kinds.

   Usage: socket_loop ROUNDS BATCH
   Prints one line per batch: "KIND NS_PER_SOCKET", after a check line per kind:
   "check KIND SO_KEEPALIVE TCP_KEEPIDLE". */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef int (*socket_fn)(int, int, int);
typedef int (*setsockopt_fn)(int, int, int, const void *, socklen_t);
static socket_fn libc_socket, program_socket;
static setsockopt_fn libc_setsockopt;

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int set(int fd, int level, int name, int value) {
    return libc_setsockopt(fd, level, name, &value, sizeof value);
}

/* Creates one socket the way `kind` does; returns it open. */
static int make(int kind) {
    int fd = (kind == 1 ? program_socket : libc_socket)(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) { perror("socket"); exit(1); }
    if (kind == 2 &&
        (set(fd, IPPROTO_TCP, TCP_KEEPIDLE, 60) || set(fd, IPPROTO_TCP, TCP_KEEPINTVL, 10) ||
         set(fd, IPPROTO_TCP, TCP_KEEPCNT, 6) || set(fd, SOL_SOCKET, SO_KEEPALIVE, 1))) {
        perror("setsockopt");
        exit(1);
    }
    return fd;
}

static const char *names[] = {"bare", "preload", "byhand"};

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: %s ROUNDS BATCH\n", argv[0]); return 2; }
    long rounds = atol(argv[1]), batch = atol(argv[2]);
    void *libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
    libc_socket = libc ? (socket_fn)dlsym(libc, "socket") : NULL;
    libc_setsockopt = libc ? (setsockopt_fn)dlsym(libc, "setsockopt") : NULL;
    program_socket = (socket_fn)dlsym(RTLD_DEFAULT, "socket");
    if (!libc_socket || !libc_setsockopt || !program_socket || libc_socket == program_socket) {
        fprintf(stderr, "run me under LD_PRELOAD=libkeepalive.so\n");
        return 2;
    }
    for (int k = 0; k < 3; k++) {
        int fd = make(k), ka = 0, idle = 0;
        socklen_t len = sizeof ka;
        getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &ka, &len);
        getsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, &len);
        printf("check %s %d %d\n", names[k], ka, idle);
        close(fd);
    }
    for (long r = 0; r < rounds; r++) {
        for (int i = 0; i < 3; i++) {
            int k = (int)((r + i) % 3);
            double start = now_ns();
            for (long j = 0; j < batch; j++) close(make(k));
            printf("%s %.1f\n", names[k], (now_ns() - start) / (double)batch);
        }
    }
    return 0;
}
