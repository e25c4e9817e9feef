/* The preload's cost in user-space instructions, for preload/bench/cachegrind.sh (valgrind
   cachegrind counts them deterministically). Creates and closes N TCP sockets one way:
     bare     socket() + close()
     byhand   socket() + the four setsockopt calls a preload makes (TCP_KEEPIDLE 60,
              TCP_KEEPINTVL 10, TCP_KEEPCNT 6, SO_KEEPALIVE 1) + close()
     nodelay  socket() + setsockopt(TCP_NODELAY) + close(): what any other option costs
   Run bare and byhand without a preload, bare and nodelay under one: the difference of two runs
   with different N is the cost per socket, without start-up. The first socket's values are
   printed so the script can check the preload really configured it.
   Usage: count_loop bare|byhand|nodelay N */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int set(int fd, int level, int name, int value) {
    return setsockopt(fd, level, name, &value, sizeof value);
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: %s bare|byhand|nodelay N\n", argv[0]); return 2; }
    int byhand = !strcmp(argv[1], "byhand"), nodelay = !strcmp(argv[1], "nodelay");
    long n = atol(argv[2]);
    for (long i = 0; i < n; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) { perror("socket"); return 1; }
        if (byhand && (set(fd, IPPROTO_TCP, TCP_KEEPIDLE, 60) || set(fd, IPPROTO_TCP, TCP_KEEPINTVL, 10) ||
                       set(fd, IPPROTO_TCP, TCP_KEEPCNT, 6) || set(fd, SOL_SOCKET, SO_KEEPALIVE, 1))) {
            perror("setsockopt");
            return 1;
        }
        if (nodelay && set(fd, IPPROTO_TCP, TCP_NODELAY, 1)) { perror("setsockopt"); return 1; }
        if (i == 0) {
            int ka = 0, idle = 0;
            socklen_t len = sizeof ka;
            getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &ka, &len);
            getsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, &len);
            fprintf(stderr, "check %d %d\n", ka, idle);
        }
        close(fd);
    }
    return 0;
}
