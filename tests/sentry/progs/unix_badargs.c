/* Bad input to the socket calls, compared with Linux: lengths, pointers, flags, names. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#define ERR(x) do { errno = 0; long r_ = (long)(x); printf("%-64s -> %ld %s\n", #x, r_, r_ < 0 ? strerrorname_np(errno) : ""); } while (0)
#define BAD ((void *)8)

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    int d = socket(AF_UNIX, SOCK_DGRAM, 0);
    int f = open("/tmp/badargs_file", O_CREAT | O_RDWR, 0600);
    socklen_t len;
    struct sockaddr_un a = {.sun_family = AF_UNIX, .sun_path = "/tmp/badargs.sock"};
    unlink(a.sun_path);
    ERR(bind(s, (struct sockaddr *)&a, 1));
    ERR(bind(s, (struct sockaddr *)&a, 111));
    ERR(bind(s, (struct sockaddr *)&a, 129));
    ERR(bind(s, (struct sockaddr *)&a, -1));
    ERR(bind(s, BAD, sizeof a));
    ERR(bind(f, (struct sockaddr *)&a, sizeof a));
    ERR(bind(99, (struct sockaddr *)&a, sizeof a));
    struct sockaddr_un in = {.sun_family = AF_INET};
    ERR(bind(s, (struct sockaddr *)&in, sizeof in));
    struct sockaddr_un longp = {.sun_family = AF_UNIX};
    memset(longp.sun_path, 'a', sizeof longp.sun_path);
    memcpy(longp.sun_path, "/tmp/", 5);
    ERR(bind(s, (struct sockaddr *)&longp, sizeof longp));   /* 108 bytes, no NUL */
    len = sizeof longp + 8;
    char got[sizeof longp + 8];
    ERR(getsockname(s, (struct sockaddr *)got, &len));
    printf("108-byte name: len %d\n", (int)len);
    close(s);
    s = socket(AF_UNIX, SOCK_STREAM, 0);
    char path[109] = {0};
    memcpy(path, longp.sun_path, 108);
    ERR(unlink(path));
    struct sockaddr_un nodir = {.sun_family = AF_UNIX, .sun_path = "/nonexistent/dir/x.sock"};
    ERR(bind(s, (struct sockaddr *)&nodir, sizeof nodir));
    ERR(connect(s, (struct sockaddr *)&nodir, sizeof nodir));
    struct sockaddr_un file = {.sun_family = AF_UNIX, .sun_path = "/tmp/badargs_file"};
    ERR(connect(s, (struct sockaddr *)&file, sizeof file));
    ERR(bind(s, (struct sockaddr *)&file, sizeof file));
    ERR(connect(s, (struct sockaddr *)&a, 0));
    ERR(connect(s, (struct sockaddr *)&a, 2));
    ERR(connect(s, BAD, sizeof a));
    struct sockaddr_un ab = {.sun_family = AF_UNIX};  /* "\0" + zeros: an abstract name */
    ERR(connect(s, (struct sockaddr *)&ab, sizeof ab));
    ERR(bind(d, (struct sockaddr *)&a, sizeof a));
    struct stat st;
    stat(a.sun_path, &st);
    printf("mode %o\n", st.st_mode);
    ERR(connect(s, (struct sockaddr *)&a, sizeof a));   /* a dgram socket bound there */
    ERR(sendto(d, "x", 1, 0, (struct sockaddr *)&a, -1));
    ERR(sendto(d, "x", 1, 0, (struct sockaddr *)&a, 200));
    ERR(sendto(d, BAD, 1, 0, (struct sockaddr *)&a, sizeof a));
    ERR(sendto(d, "x", 1, 0, BAD, sizeof a));
    ERR(sendto(d, "x", 1, MSG_OOB, (struct sockaddr *)&a, sizeof a));
    ERR(recvfrom(d, BAD, 1, MSG_DONTWAIT, NULL, NULL));
    ERR(recv(d, NULL, 0, MSG_DONTWAIT));
    ERR(recv(d, "", 1, MSG_OOB | MSG_DONTWAIT));
    len = sizeof a;
    ERR(getsockname(s, BAD, &len));
    ERR(getsockname(s, (struct sockaddr *)&a, BAD));
    len = -1;
    ERR(getsockname(s, (struct sockaddr *)&a, &len));
    len = 1;
    ERR(getsockname(d, (struct sockaddr *)&a, &len));
    printf("len %d first byte %d\n", (int)len, ((char *)&a)[0]);
    ERR(getsockname(f, (struct sockaddr *)&a, &len));
    ERR(getpeername(s, (struct sockaddr *)&a, &len));
    ERR(listen(f, 1));
    ERR(accept(s, NULL, NULL));
    ERR(accept4(s, NULL, NULL, 0x1234));
    int v = 1;
    ERR(setsockopt(s, SOL_SOCKET, SO_PASSCRED, BAD, 4));
    ERR(setsockopt(s, SOL_SOCKET, SO_PASSCRED, &v, -1));
    ERR(getsockopt(s, SOL_SOCKET, SO_TYPE, &v, BAD));
    len = -1;
    ERR(getsockopt(s, SOL_SOCKET, SO_TYPE, &v, &len));
    len = 4;
    ERR(getsockopt(s, SOL_SOCKET, SO_TYPE, BAD, &len));
    len = 2; v = 0;
    ERR(getsockopt(s, SOL_SOCKET, SO_TYPE, &v, &len));
    printf("short SO_TYPE: len %d value %d\n", (int)len, v);
    len = 0;
    ERR(getsockopt(s, SOL_SOCKET, SO_TYPE, &v, &len));
    ERR(getsockopt(f, SOL_SOCKET, SO_TYPE, &v, &len));
    int sv[2];
    ERR(socketpair(AF_UNIX, SOCK_STREAM, 0, BAD));
    ERR(socketpair(AF_UNIX, SOCK_STREAM, 0, NULL));
    ERR(socketpair(AF_UNIX, SOCK_STREAM, 5, sv));
    socketpair(AF_UNIX, SOCK_DGRAM, 0, sv);
    struct msghdr m = {0};
    ERR(sendmsg(sv[0], BAD, 0));
    ERR(recvmsg(sv[1], BAD, MSG_DONTWAIT));
    struct iovec iov = {"abc", 3};
    m.msg_iov = &iov; m.msg_iovlen = 1025;
    ERR(sendmsg(sv[0], &m, 0));
    m.msg_iovlen = 1; m.msg_iov = BAD;
    ERR(sendmsg(sv[0], &m, 0));
    m.msg_iov = &iov; m.msg_name = &a; m.msg_namelen = 500;
    ERR(sendmsg(sv[0], &m, 0));
    m.msg_namelen = 0;
    ERR(sendmsg(sv[0], &m, 0));
    m.msg_name = NULL;
    m.msg_control = BAD; m.msg_controllen = 16;
    ERR(sendmsg(sv[0], &m, 0));
    m.msg_controllen = 1UL << 40;
    ERR(sendmsg(sv[0], &m, 0));
    m.msg_control = NULL; m.msg_controllen = 0;
    char buf[8];
    struct iovec riov = {buf, sizeof buf};
    struct msghdr r = {.msg_iov = &riov, .msg_iovlen = 1, .msg_name = &a, .msg_namelen = -1};
    ERR(recvmsg(sv[1], &r, MSG_DONTWAIT));
    r.msg_namelen = sizeof a;
    ERR(recvmsg(sv[1], &r, MSG_DONTWAIT));
    printf("namelen %d flags %#x\n", (int)r.msg_namelen, r.msg_flags);
    ERR(recvmsg(sv[1], &r, MSG_DONTWAIT));
    ERR(syscall(SYS_sendmmsg, sv[0], BAD, 1, 0));
    struct mmsghdr mm[2] = {{.msg_hdr = m}, {.msg_hdr = m}};
    mm[1].msg_hdr.msg_iov = BAD;
    ERR(sendmmsg(sv[0], mm, 2, 0));
    printf("msg_len %u\n", mm[0].msg_len);
    struct mmsghdr rm[3];
    char b0[8], b1[8], b2[8];
    struct iovec i0 = {b0, 8}, i1 = {b1, 8}, i2 = {b2, 8};
    memset(rm, 0, sizeof rm);
    rm[0].msg_hdr.msg_iov = &i0; rm[0].msg_hdr.msg_iovlen = 1;
    rm[1].msg_hdr.msg_iov = &i1; rm[1].msg_hdr.msg_iovlen = 1;
    rm[2].msg_hdr.msg_iov = &i2; rm[2].msg_hdr.msg_iovlen = 1;
    send(sv[0], "two", 3, 0);
    ERR(recvmmsg(sv[1], rm, 3, MSG_DONTWAIT, NULL));
    printf("lens %u %u\n", rm[0].msg_len, rm[1].msg_len);
    ERR(recvmmsg(sv[1], rm, 3, MSG_DONTWAIT, NULL));
    ERR(shutdown(f, SHUT_RD));
    ERR(shutdown(99, SHUT_RD));
    close(s); close(d); close(f); close(sv[0]); close(sv[1]);
    unlink("/tmp/badargs_file"); unlink("/tmp/badargs.sock");
    return 0;
}
