/* The interface ioctls on sockets of each family (glibc's if_nametoindex and
 * if_indextoname use an AF_UNIX one): SIOCGIFINDEX and SIOCGIFNAME, ENODEV for no such
 * interface, EFAULT for a bad pointer. Run natively in a fresh network namespace. */
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static void show(const char *what, int r) {
    printf("%s: %d %s\n", what, r, r < 0 ? strerror(errno) : "");
}

int main(void) {
    int fams[] = {AF_UNIX, AF_INET, AF_INET6};
    for (int i = 0; i < 3; i++) {
        int s = socket(fams[i], SOCK_DGRAM, 0);
        printf("family %d\n", fams[i]);
        struct ifreq r;
        memset(&r, 0, sizeof r);
        strcpy(r.ifr_name, "lo");
        show("  SIOCGIFINDEX lo", ioctl(s, SIOCGIFINDEX, &r));
        printf("  index %d\n", r.ifr_ifindex);
        memset(&r, 0, sizeof r);
        strcpy(r.ifr_name, "nosuch0");
        show("  SIOCGIFINDEX nosuch0", ioctl(s, SIOCGIFINDEX, &r));
        memset(&r, 0, sizeof r);
        r.ifr_ifindex = 1;
        show("  SIOCGIFNAME 1", ioctl(s, SIOCGIFNAME, &r));
        printf("  name %s\n", r.ifr_name);
        memset(&r, 0, sizeof r);
        r.ifr_ifindex = 9999;
        show("  SIOCGIFNAME 9999", ioctl(s, SIOCGIFNAME, &r));
        show("  SIOCGIFINDEX bad pointer", ioctl(s, SIOCGIFINDEX, (void *)8));
        close(s);
    }
    char name[IF_NAMESIZE];
    printf("if_nametoindex lo %u\n", if_nametoindex("lo"));
    printf("if_nametoindex nosuch0 %u\n", if_nametoindex("nosuch0"));
    printf("if_indextoname 1 %s\n", if_indextoname(1, name) ? name : strerror(errno));
    return 0;
}
