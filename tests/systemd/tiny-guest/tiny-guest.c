/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A guest small enough to run under TCG inside a TCG guest: a 32-bit
 * multiboot kernel (QEMU's -kernel, libvirt's <os><kernel>) that writes the
 * pages tiny-guest.h describes into its memory, says so on the first serial
 * port and then, woken by the PIT, checks every page against the sum it had
 * when written (a weighted sum of its words: cheap enough under TCG inside
 * TCG) and prints a line about it every 4 seconds, halted in between:
 *
 *   KSMD-TINY ready seed=1 shared=2048 unique=256 zero=512
 *   KSMD-TINY alive 1 shared-intact=2048/2048 unique-intact=256/256 zero-intact=512/512
 *
 * Its command line (libvirt's <cmdline>) may set seed=, shared=, unique= and
 * zero=. Any exception prints "KSMD-TINY exception" and stops the CPU, so a
 * guest that breaks says so and stops printing "alive".
 *
 * Built freestanding for i386 (tests/systemd/meson.build); no libc, no
 * libgcc (32-bit arithmetic only).
 */

#include <stdint.h>

#include "tiny-guest.h"

#define COM1 0x3f8
#define PIT_HZ 1193182u
#define TICKS_PER_CHECK 73u /* about 4 s at the PIT's slowest rate, 18.2 Hz */

/* Multiboot: magic, flags (none: an ELF kernel, no requests), checksum. */
__asm__(".section .multiboot, \"a\"\n"
        ".align 4\n"
        ".long 0x1badb002, 0, -0x1badb002\n"
        ".text\n"
        ".globl _start\n"
        "_start:\n"
        "        mov $stack_top, %esp\n"
        "        push %ebx\n" /* the multiboot information */
        "        push %eax\n" /* the bootloader's magic */
        "        call kmain\n"
        "1:      cli\n"
        "        hlt\n"
        "        jmp 1b\n"
        /* IRQ 0, the PIT: count, and end the interrupt at the master PIC. */
        ".globl irq_timer\n"
        "irq_timer:\n"
        "        push %eax\n"
        "        incl ticks\n"
        "        mov $0x20, %al\n"
        "        out %al, $0x20\n"
        "        pop %eax\n"
        "        iret\n"
        /* The other IRQs are masked; a spurious one (7 or 15) takes no EOI. */
        ".globl irq_ignore\n"
        "irq_ignore:\n"
        "        iret\n"
        ".globl exception\n"
        "exception:\n"
        "        cli\n"
        "        call on_exception\n"
        "2:      hlt\n"
        "        jmp 2b\n");

void irq_timer(void);
void irq_ignore(void);
void exception(void);
void kmain(uint32_t magic, const uint32_t *info);
void on_exception(void);

static uint8_t stack[16384] __attribute__((aligned(16), used));
__asm__(".globl stack_top\n.set stack_top, stack + 16384\n");

volatile uint32_t ticks __attribute__((used));

struct __attribute__((packed)) table_pointer {
        uint16_t limit;
        uint32_t base;
};

struct __attribute__((packed)) gate {
        uint16_t offset_low;
        uint16_t selector;
        uint8_t zero;
        uint8_t type;
        uint16_t offset_high;
};

/* Null, flat code (0x08), flat data (0x10). */
static const uint64_t gdt[3] __attribute__((aligned(8))) = {
        0,
        0x00cf9a000000ffffull,
        0x00cf92000000ffffull,
};
static struct gate idt[48] __attribute__((aligned(8)));

static inline void outb(uint16_t port, uint8_t v) {
        __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port) {
        uint8_t v;

        __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
        return v;
}

static void serial_init(void) {
        outb(COM1 + 1, 0x00); /* no interrupts */
        outb(COM1 + 3, 0x80); /* divisor latch */
        outb(COM1 + 0, 0x01); /* 115200 baud */
        outb(COM1 + 1, 0x00);
        outb(COM1 + 3, 0x03); /* 8N1 */
        outb(COM1 + 2, 0xc7); /* FIFO on, cleared */
        outb(COM1 + 4, 0x03); /* DTR, RTS */
}

static void put_char(char c) {
        while (!(inb(COM1 + 5) & 0x20))
                ;
        outb(COM1, (uint8_t) c);
}

static void put_str(const char *s) {
        for (; *s; s++) {
                if (*s == '\n')
                        put_char('\r');
                put_char(*s);
        }
}

static void put_uint(uint32_t v) {
        char buf[11];
        int n = 0;

        do
                buf[n++] = (char) ('0' + v % 10);
        while ((v /= 10) && n < 10);
        while (n > 0)
                put_char(buf[--n]);
}

void on_exception(void) {
        put_str("KSMD-TINY exception\n");
}

static void set_gate(unsigned vector, void (*handler)(void)) {
        uint32_t a = (uint32_t) handler;

        idt[vector] = (struct gate) { .offset_low = (uint16_t) a, .selector = 0x08, .type = 0x8e,
                                      .offset_high = (uint16_t) (a >> 16) };
}

static void cpu_tables_init(void) {
        struct table_pointer g = { sizeof(gdt) - 1, (uint32_t) gdt };
        struct table_pointer i = { sizeof(idt) - 1, (uint32_t) idt };

        __asm__ volatile("lgdt %0\n"
                         "ljmp $0x08, $1f\n"
                         "1: mov $0x10, %%ax\n"
                         "mov %%ax, %%ds\n"
                         "mov %%ax, %%es\n"
                         "mov %%ax, %%fs\n"
                         "mov %%ax, %%gs\n"
                         "mov %%ax, %%ss\n"
                         :
                         : "m"(g)
                         : "eax", "memory");
        for (unsigned v = 0; v < 32; v++)
                set_gate(v, exception);
        for (unsigned v = 32; v < 48; v++)
                set_gate(v, irq_ignore);
        set_gate(32, irq_timer);
        __asm__ volatile("lidt %0" : : "m"(i));
}

/*
 * The PICs on vectors 32-47, every IRQ masked but the PIT's; the PIT at its
 * slowest. The local APIC passes the PIC's interrupts on (virtual wire: LINT0
 * as ExtINT), which SeaBIOS sets up and qboot does not; its spurious vector is
 * 47, a gate that only returns.
 */
static void timer_init(void) {
        volatile uint32_t *lapic = (volatile uint32_t *) 0xfee00000u;

        lapic[0xf0 / 4] = 0x100 | 47;
        lapic[0x350 / 4] = 0x700;
        outb(0x20, 0x11);
        outb(0xa0, 0x11);
        outb(0x21, 32);
        outb(0xa1, 40);
        outb(0x21, 4);
        outb(0xa1, 2);
        outb(0x21, 1);
        outb(0xa1, 1);
        outb(0x21, 0xfe);
        outb(0xa1, 0xff);
        outb(0x43, 0x34); /* channel 0, rate generator, divisor 65536 */
        outb(0x40, 0);
        outb(0x40, 0);
}

/* The value of key=NUMBER in the command line, or def. */
static uint32_t cmdline_uint(const char *cmdline, const char *key, uint32_t def) {
        for (const char *p = cmdline; p && *p; p++) {
                const char *k = key, *q = p;
                uint32_t v = 0;

                if (p != cmdline && p[-1] != ' ')
                        continue;
                while (*k && *q == *k)
                        k++, q++;
                if (*k || *q != '=' || q[1] < '0' || q[1] > '9')
                        continue;
                for (q++; *q >= '0' && *q <= '9'; q++)
                        v = v * 10 + (uint32_t) (*q - '0');
                return v;
        }
        return def;
}

static void fill(uint32_t *page, uint32_t kind, uint32_t index, uint32_t seed) {
        page[0] = TINY_MAGIC;
        page[1] = kind;
        page[2] = index;
        page[3] = seed;
        for (uint32_t w = 4; w < TINY_PAGE_WORDS; w++)
                page[w] = tiny_word(kind, index, seed, w);
}

/* The sum of a page's words: what each check compares, at a fraction of tiny_word()'s cost. */
static uint32_t page_sum(const uint32_t *page) {
        uint32_t sum = 0;

        for (uint32_t w = 0; w < TINY_PAGE_WORDS; w++)
                sum += page[w] ^ (w * 0x9e3779b1u);
        return sum;
}

static uint32_t *page_at(uint32_t n) {
        return (uint32_t *) (TINY_AREA_START + n * TINY_PAGE_SIZE);
}

/* Each page's sum as written; the zero pages' sum is page_sum() of zeros. */
#define MAX_PAGES 8192u
static uint32_t sums[MAX_PAGES];

void kmain(uint32_t magic, const uint32_t *info) {
        const char *cmdline = 0;
        uint32_t seed, shared, unique, zero, checks = 0;

        serial_init();
        cpu_tables_init();
        if (magic == 0x2badb002u && (info[0] & 4))
                cmdline = (const char *) info[4];
        seed = cmdline_uint(cmdline, "seed", 1);
        shared = cmdline_uint(cmdline, "shared", TINY_SHARED_PAGES);
        unique = cmdline_uint(cmdline, "unique", TINY_UNIQUE_PAGES);
        zero = cmdline_uint(cmdline, "zero", TINY_ZERO_PAGES);
        /* The areas must end 1 MiB below the top of memory (mem_upper: KiB above 1 MiB). */
        if (magic != 0x2badb002u || !(info[0] & 1) || seed == 0 ||
            shared + unique + zero > MAX_PAGES ||
            (TINY_AREA_START >> 10) + (shared + unique + zero) * 4 + 1024 > 1024 + info[2]) {
                put_str("KSMD-TINY refused: no multiboot memory information, seed=0 or too little memory\n");
                return;
        }

        for (uint32_t i = 0; i < shared; i++)
                fill(page_at(i), TINY_KIND_SHARED, i, 0);
        for (uint32_t i = 0; i < unique; i++)
                fill(page_at(shared + i), TINY_KIND_UNIQUE, i, seed);
        for (uint32_t i = 0; i < zero; i++)
                for (uint32_t w = 0; w < TINY_PAGE_WORDS; w++)
                        page_at(shared + unique + i)[w] = 0;
        for (uint32_t i = 0; i < shared + unique + zero; i++)
                sums[i] = page_sum(page_at(i));
        put_str("KSMD-TINY ready seed=");
        put_uint(seed);
        put_str(" shared=");
        put_uint(shared);
        put_str(" unique=");
        put_uint(unique);
        put_str(" zero=");
        put_uint(zero);
        put_str("\n");

        timer_init();
        for (;;) {
                uint32_t ok_shared = 0, ok_unique = 0, ok_zero = 0;

                while (ticks < (checks + 1) * TICKS_PER_CHECK)
                        __asm__ volatile("sti\n\thlt" ::: "memory");
                checks++;
                for (uint32_t i = 0; i < shared; i++)
                        ok_shared += page_sum(page_at(i)) == sums[i];
                for (uint32_t i = shared; i < shared + unique; i++)
                        ok_unique += page_sum(page_at(i)) == sums[i];
                for (uint32_t i = shared + unique; i < shared + unique + zero; i++)
                        ok_zero += page_sum(page_at(i)) == sums[i];
                put_str("KSMD-TINY alive ");
                put_uint(checks);
                put_str(" shared-intact=");
                put_uint(ok_shared);
                put_str("/");
                put_uint(shared);
                put_str(" unique-intact=");
                put_uint(ok_unique);
                put_str("/");
                put_uint(unique);
                put_str(" zero-intact=");
                put_uint(ok_zero);
                put_str("/");
                put_uint(zero);
                put_str("\n");
        }
}
