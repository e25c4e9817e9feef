/*
 * An unmodified C HTTP client for the middlebox lab: plain socket/connect/send/recv, linked
 * statically (gcc -static), so LD_PRELOAD cannot reach it. It knows nothing of keep-alive; the
 * lab's "with" run puts it in a cgroup attached with `tcp-keepalive cgroup attach`, and the kernel
 * door gives its socket the scenario's keep-alive when it connects.
 *
 * Lab contract (e2e/README.md): reads LAB_HOST (an IPv4 or IPv6 literal), LAB_PORT, LAB_PATH,
 * LAB_DEADLINE (its read timeout, seconds, from the request) and, when set, LAB_WRITE_AFTER (send
 * a POST whose body follows the headers that many seconds later; the deadline then starts after
 * the body). Exit 0: the full answer (status 200 and Content-Length bytes); 10: the deadline
 * passed; 11: the connection failed (errno name printed first). Every wait is bounded.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BODY_LENGTH 4096
#define CONNECT_TIMEOUT_MS 10000

static struct timespec started;

static double elapsed(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - started.tv_sec) + (double)(now.tv_nsec - started.tv_nsec) / 1e9;
}

/* The errno's C name (glibc 2.32+), which the lab looks for: ETIMEDOUT. */
static int failed(const char *what, int err) {
    const char *name = strerrorname_np(err);
    printf("%s: %s: %s (after %.1f s)\n", name ? name : "errno", what, strerror(err), elapsed());
    return 11;
}

static double env_seconds(const char *name, int *ok) {
    const char *text = getenv(name);
    char *end = NULL;
    double value = text ? strtod(text, &end) : -1;
    *ok = text && *text && end && *end == '\0' && value >= 0;
    if (!*ok)
        printf("usage: %s=%s: want seconds >= 0\n", name, text ? text : "(unset)");
    return value;
}

/* Waits for `events` on fd for at most ms milliseconds: 1 ready, 0 timed out, -1 error. */
static int wait_for(int fd, short events, int ms) {
    struct pollfd p = {.fd = fd, .events = events};
    int n;
    do {
        n = poll(&p, 1, ms);
    } while (n < 0 && errno == EINTR);
    return n;
}

static int send_all(int fd, const char *data, size_t length) {
    while (length > 0) {
        ssize_t n = send(fd, data, length, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        data += n;
        length -= (size_t)n;
    }
    return 0;
}

int main(void) {
    clock_gettime(CLOCK_MONOTONIC, &started);
    const char *host = getenv("LAB_HOST"), *port_text = getenv("LAB_PORT"), *path = getenv("LAB_PATH");
    int ok;
    double deadline = env_seconds("LAB_DEADLINE", &ok);
    if (!ok)
        return 2;
    double write_after = -1;
    if (getenv("LAB_WRITE_AFTER")) {
        write_after = env_seconds("LAB_WRITE_AFTER", &ok);
        if (!ok)
            return 2;
    }
    if (!host || !port_text || !path) {
        printf("usage: LAB_HOST, LAB_PORT and LAB_PATH must be set\n");
        return 2;
    }

    struct sockaddr_storage address;
    memset(&address, 0, sizeof address);
    socklen_t address_length;
    struct sockaddr_in *v4 = (struct sockaddr_in *)&address;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&address;
    int port = atoi(port_text);
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((unsigned short)port);
        address_length = sizeof *v4;
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((unsigned short)port);
        address_length = sizeof *v6;
    } else {
        printf("usage: LAB_HOST=%s: want an IPv4 or IPv6 address\n", host);
        return 2;
    }

    int fd = socket(address.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return failed("socket", errno);
    if (connect(fd, (struct sockaddr *)&address, address_length) < 0 && errno != EINPROGRESS)
        return failed("connect", errno);
    if (wait_for(fd, POLLOUT, CONNECT_TIMEOUT_MS) <= 0) {
        printf("deadline: no connection within %d ms (after %.1f s)\n", CONNECT_TIMEOUT_MS, elapsed());
        return 10;
    }
    int err = 0;
    socklen_t err_length = sizeof err;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &err_length);
    if (err)
        return failed("connect", err);

    char request[1024];
    int request_length;
    if (write_after < 0)
        request_length = snprintf(request, sizeof request,
                                  "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, host);
    else
        request_length = snprintf(request, sizeof request,
                                  "POST %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n"
                                  "Content-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n",
                                  path, host, BODY_LENGTH);
    if (request_length < 0 || (size_t)request_length >= sizeof request) {
        printf("usage: LAB_PATH is too long\n");
        return 2;
    }
    if (send_all(fd, request, (size_t)request_length) < 0)
        return failed("send", errno);
    if (write_after >= 0) {
        /* The body goes out later, into whatever the path has become by then. */
        struct timespec pause = {(time_t)write_after, (long)((write_after - (time_t)write_after) * 1e9)};
        while (nanosleep(&pause, &pause) < 0 && errno == EINTR) {
        }
        static char body[BODY_LENGTH];
        memset(body, 'x', sizeof body);
        if (send_all(fd, body, sizeof body) < 0 && errno != EAGAIN)
            return failed("send", errno);
    }

    /* Read the whole answer (Connection: close) before the deadline. */
    static char answer[65536];
    size_t have = 0;
    double until = elapsed() + deadline;
    for (;;) {
        double left = until - elapsed();
        int ready = left > 0 ? wait_for(fd, POLLIN, (int)(left * 1000) + 1) : 0;
        if (ready < 0)
            return failed("poll", errno);
        if (ready == 0) {
            printf("deadline: no answer within %g s (after %.1f s)\n", deadline, elapsed());
            return 10;
        }
        ssize_t n = recv(fd, answer + have, sizeof answer - 1 - have, 0);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return failed("recv", errno);
        }
        if (n == 0 || have + (size_t)n >= sizeof answer - 1) {
            have += (size_t)n;
            break;
        }
        have += (size_t)n;
    }
    close(fd);
    answer[have] = '\0';

    char *head_end = strstr(answer, "\r\n\r\n");
    const char *length_header = strcasestr(answer, "\r\nContent-Length:");
    if (strncmp(answer, "HTTP/1.1 200 ", 13) != 0 && strncmp(answer, "HTTP/1.0 200 ", 13) != 0) {
        printf("http error: %.40s (after %.1f s)\n", have ? answer : "an empty answer", elapsed());
        return 11;
    }
    if (!head_end || !length_header || length_header > head_end) {
        printf("http error: no Content-Length in the answer (after %.1f s)\n", elapsed());
        return 11;
    }
    long want = strtol(length_header + strlen("\r\nContent-Length:"), NULL, 10);
    char *body = head_end + 4;
    long got = (long)(answer + have - body);
    if (got != want) {
        printf("http error: %ld of %ld body bytes (after %.1f s)\n", got, want, elapsed());
        return 11;
    }
    body[strcspn(body, "\r\n")] = '\0';
    printf("answer: %s (after %.1f s)\n", body, elapsed());
    return 0;
}
