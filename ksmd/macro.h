/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Ownership helpers in the style of systemd's macro.h: a cleanup attribute on
 * every owning local, TAKE_PTR/TAKE_FD to hand ownership on.
 */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _pure_ __attribute__((pure))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _likely_(x) (__builtin_expect(!!(x), 1))
#define _unlikely_(x) (__builtin_expect(!!(x), 0))
#define _noreturn_ __attribute__((noreturn))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

#define TAKE_PTR(p)                             \
        ({                                      \
                __typeof__(p) _p_ = (p);        \
                (p) = NULL;                     \
                _p_;                            \
        })

#define TAKE_FD(fd)                             \
        ({                                      \
                int _fd_ = (fd);                \
                (fd) = -EBADF;                  \
                _fd_;                           \
        })

/* Defines foo_freep(Foo **p) for a foo_free() that accepts NULL. */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)         \
        static inline void func##p(type *p) {           \
                if (*p)                                 \
                        *p = func(*p);                  \
        }

static inline void freep(void *p) {
        free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline int safe_close(int fd) {
        if (fd >= 0) {
                int saved = errno;
                (void) close(fd);
                errno = saved;
        }
        return -EBADF;
}

static inline void closep(int *fd) {
        *fd = safe_close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

#define ERRNO_IS_NEG(r) ((r) < 0)

static inline int negative_errno(void) {
        return errno > 0 ? -errno : -EIO;
}

/* The page size the daemon and the helper work in (x86-64 base pages). */
#define PAGE_SIZE_BYTES 4096u

/* true if x equals one of the values that follow, as systemd's IN_SET(). */
#define IN_SET(x, first, ...)                                                                  \
        ({                                                                                      \
                const __typeof__(x) _x_ = (x);                                                  \
                const __typeof__(x) _set_[] = { first, __VA_ARGS__ };                           \
                bool _found_ = false;                                                           \
                for (size_t _i_ = 0; _i_ < ELEMENTSOF(_set_); _i_++)                            \
                        if (_set_[_i_] == _x_) {                                                \
                                _found_ = true;                                                 \
                                break;                                                          \
                        }                                                                       \
                _found_;                                                                        \
        })

/*
 * The first index _i_ in [0, n) at which key_at_i (an expression of _i_) is
 * at least key, or n: a binary search of an array ascending by that key.
 */
#define LOWER_BOUND(n, key, key_at_i)                                           \
        ({                                                                      \
                size_t _lo_ = 0, _hi_ = (n);                                    \
                while (_lo_ < _hi_) {                                           \
                        size_t _i_ = _lo_ + (_hi_ - _lo_) / 2;                  \
                        if ((key_at_i) < (key))                                 \
                                _lo_ = _i_ + 1;                                 \
                        else                                                    \
                                _hi_ = _i_;                                     \
                }                                                               \
                _lo_;                                                           \
        })

#define streq(a, b) (strcmp((a), (b)) == 0)

/* What follows prefix in s, or NULL if s does not start with it (as systemd's). */
static inline const char *startswith(const char *s, const char *prefix) {
        size_t n = strlen(prefix);

        return strncmp(s, prefix, n) == 0 ? s + n : NULL;
}

static inline bool endswith(const char *s, const char *suffix) {
        size_t n = strlen(s), k = strlen(suffix);

        return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

/* A NULL-terminated string list literal. */
#define STRV_MAKE(...) ((char **) (const char *[]) { __VA_ARGS__, NULL })

#define DIV_ROUND_UP(x, y) (((x) + (y) - 1) / (y))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

#define sizeof_field(type, member) sizeof(((type *) 0)->member)
