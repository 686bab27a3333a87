// arc4random for glibc older than 2.36, linked only into the self-contained wheel's
// binaries (CMakeLists.txt, TENSORSTREAM_STATIC_DEPS).
//
// Why: those binaries carry libstdc++ (linked statically, built against this machine's
// glibc 2.36), whose std::random_device names arc4random. tensorstream never constructs a
// random_device, but the reference alone would make the binaries refuse to load on glibc
// 2.34 and 2.35 (RHEL 9, Ubuntu 22.04). This definition satisfies it at link time, stays
// local to the binary (the export map keeps only tensorstream_*), and returns kernel
// randomness, as glibc's does.
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/random.h>
#include <unistd.h>

uint32_t arc4random(void) {
  uint32_t value;
  for (;;) {
    const ssize_t got = getrandom(&value, sizeof value, 0);
    if (got == (ssize_t)sizeof value) return value;
    if (got < 0 && errno == EINTR) continue;
    break;  // no getrandom (kernels before 3.17): /dev/urandom below
  }
  const int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    const ssize_t got = read(fd, &value, sizeof value);
    close(fd);
    if (got == (ssize_t)sizeof value) return value;
  }
  abort();  // as glibc's arc4random: no randomness at all is not survivable
}
