/* A library whose constructor creates a TCP socket while the program is still being loaded.
   Preloaded after libkeepalive.so (LD_PRELOAD="libkeepalive.so early.so"), its constructor runs
   before libkeepalive.so's own, so the hook must find its configuration and the real socket()
   on that first call by itself. Prints the socket's values like sockets.c does. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

static int get(int fd, int level, int name) {
    int v = -1;
    socklen_t l = sizeof v;
    getsockopt(fd, level, name, &v, &l);
    return v;
}

__attribute__((constructor)) static void early(void) {
    errno = 777;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int err = errno;
    printf("early-constructor ret=%s errno=%d ka=%d idle=%d intvl=%d cnt=%d ut=%d\n",
           fd >= 0 ? "ok" : "fail", err, get(fd, SOL_SOCKET, SO_KEEPALIVE),
           get(fd, IPPROTO_TCP, TCP_KEEPIDLE), get(fd, IPPROTO_TCP, TCP_KEEPINTVL),
           get(fd, IPPROTO_TCP, TCP_KEEPCNT), get(fd, IPPROTO_TCP, TCP_USER_TIMEOUT));
    fflush(stdout);
    if (fd >= 0) close(fd);
}
