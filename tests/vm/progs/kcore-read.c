/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * kcore-read: copies LEN bytes of the running kernel's memory at virtual
 * address ADDR (hex) to stdout, read through /proc/kcore, as the kernel
 * maps it now: module text after the kernel patched it at load, kernel text
 * after boot-time patching (IBT sealing). The guest's helper-ibt scenario
 * disassembles what it prints.
 *
 *   kcore-read ADDR LEN > bytes
 *
 * Exits 0 with exactly LEN bytes written; 1 with a message naming what failed
 * (no /proc/kcore, an address no segment covers, a short read).
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int fail(const char *what) {
        fprintf(stderr, "kcore-read: %s: %s\n", what, strerror(errno));
        return 1;
}

int main(int argc, char *argv[]) {
        uint64_t addr, len, off = 0;
        Elf64_Ehdr eh;
        Elf64_Phdr ph;
        char *end;
        int fd;

        if (argc != 3) {
                fprintf(stderr, "usage: kcore-read ADDR LEN\n");
                return 2;
        }
        errno = 0;
        addr = strtoull(argv[1], &end, 16);
        if (errno || *end) {
                fprintf(stderr, "kcore-read: bad address '%s'\n", argv[1]);
                return 2;
        }
        len = strtoull(argv[2], &end, 0);
        if (errno || *end || len == 0 || len > (64u << 20)) {
                fprintf(stderr, "kcore-read: bad length '%s' (1 to 64 MiB)\n", argv[2]);
                return 2;
        }

        fd = open("/proc/kcore", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return fail("/proc/kcore");
        if (pread(fd, &eh, sizeof(eh), 0) != sizeof(eh))
                return fail("reading the ELF header of /proc/kcore");
        if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
            eh.e_phentsize != sizeof(ph)) {
                fprintf(stderr, "kcore-read: /proc/kcore is not a 64-bit ELF core\n");
                return 1;
        }

        for (unsigned i = 0; i < eh.e_phnum; i++) {
                if (pread(fd, &ph, sizeof(ph), eh.e_phoff + (uint64_t) i * sizeof(ph)) != sizeof(ph))
                        return fail("reading a program header of /proc/kcore");
                if (ph.p_type != PT_LOAD || addr < ph.p_vaddr || addr - ph.p_vaddr >= ph.p_memsz)
                        continue;
                if (len > ph.p_memsz - (addr - ph.p_vaddr)) {
                        fprintf(stderr, "kcore-read: 0x%" PRIx64 "+%" PRIu64 " crosses a segment end\n",
                                addr, len);
                        return 1;
                }
                off = ph.p_offset + (addr - ph.p_vaddr);
                break;
        }
        if (off == 0) {
                fprintf(stderr, "kcore-read: no /proc/kcore segment holds 0x%" PRIx64 "\n", addr);
                return 1;
        }

        while (len > 0) {
                char buf[65536];
                size_t n = len < sizeof(buf) ? len : sizeof(buf);
                ssize_t r = pread(fd, buf, n, off);

                if (r <= 0) {
                        if (r == 0)
                                errno = EIO;
                        return fail("reading /proc/kcore");
                }
                if (fwrite(buf, 1, r, stdout) != (size_t) r)
                        return fail("writing stdout");
                off += r;
                len -= r;
        }
        return fflush(stdout) == 0 ? 0 : fail("writing stdout");
}
