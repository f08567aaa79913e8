/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * helper-genl.h: a minimal raw generic netlink client for the ksmd_helper
 * VM tests. Header-only, no libraries, so a test program is one C file.
 * Every function returns 0 or a negative errno; the last extack message
 * from the kernel is kept in kg_extack. Processes are named by pidfd
 * (kg_pidfd_open()), in this process's file table.
 */
#ifndef HELPER_GENL_H
#define HELPER_GENL_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>

#include <linux/ksmd_helper.h>

#define KG_BUF_SIZE (256 * 1024)

typedef struct {
        int fd;
        uint16_t family;
        uint32_t seq;
        char *buf;              /* request being built */
        size_t len;
        size_t nest[4];
        int depth;
        char *rbuf;             /* last reply */
        ssize_t rlen;
} KgSock;

static char kg_extack[256];

/* A pidfd for pid (close-on-exec by default), or -errno. */
static inline int kg_pidfd_open(pid_t pid) {
        int fd = (int) syscall(__NR_pidfd_open, pid, 0);

        return fd < 0 ? -errno : fd;
}

static inline struct nlattr *kg_put(KgSock *s, uint16_t type, const void *data, size_t len) {
        struct nlattr *a = (struct nlattr *) (s->buf + s->len);

        a->nla_type = type;
        a->nla_len = NLA_HDRLEN + len;
        if (len)
                memcpy((char *) a + NLA_HDRLEN, data, len);
        s->len += NLA_ALIGN(a->nla_len);
        return a;
}

static inline void kg_put_u32(KgSock *s, uint16_t type, uint32_t v) { kg_put(s, type, &v, 4); }
static inline void kg_put_u64(KgSock *s, uint16_t type, uint64_t v) { kg_put(s, type, &v, 8); }

static inline void kg_nest_start(KgSock *s, uint16_t type) {
        s->nest[s->depth++] = s->len;
        kg_put(s, type | NLA_F_NESTED, NULL, 0);
}

static inline void kg_nest_end(KgSock *s) {
        struct nlattr *a = (struct nlattr *) (s->buf + s->nest[--s->depth]);

        a->nla_len = s->len - s->nest[s->depth];
}

static inline void kg_begin(KgSock *s, uint16_t family, uint8_t cmd, uint16_t flags) {
        struct nlmsghdr *h = (struct nlmsghdr *) s->buf;
        struct genlmsghdr *g = NLMSG_DATA(h);

        memset(s->buf, 0, NLMSG_HDRLEN + GENL_HDRLEN);
        h->nlmsg_type = family;
        h->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        h->nlmsg_seq = ++s->seq;
        g->cmd = cmd;
        g->version = KSMD_HELPER_GENL_VERSION;
        s->len = NLMSG_HDRLEN + GENL_HDRLEN;
        s->depth = 0;
}

/* Attributes of a message payload or a nest, indexed by type. */
static inline void kg_parse(const void *data, size_t len, const struct nlattr **tb, int max) {
        const struct nlattr *a;

        memset(tb, 0, sizeof(*tb) * (max + 1));
        for (a = data; len >= NLA_HDRLEN && a->nla_len >= NLA_HDRLEN && a->nla_len <= len;
             len -= NLA_ALIGN(a->nla_len), a = (const void *) ((const char *) a + NLA_ALIGN(a->nla_len))) {
                int t = a->nla_type & NLA_TYPE_MASK;

                if (t <= max)
                        tb[t] = a;
                if ((size_t) NLA_ALIGN(a->nla_len) >= len)
                        break;
        }
}

static inline const void *kg_data(const struct nlattr *a) { return (const char *) a + NLA_HDRLEN; }
static inline size_t kg_dlen(const struct nlattr *a) { return a->nla_len - NLA_HDRLEN; }
static inline uint32_t kg_u32(const struct nlattr *a) { uint32_t v; memcpy(&v, kg_data(a), 4); return v; }
static inline uint64_t kg_u64(const struct nlattr *a) { uint64_t v; memcpy(&v, kg_data(a), 8); return v; }

static inline void kg_extack_parse(const struct nlmsghdr *h) {
        const struct nlmsgerr *e = NLMSG_DATA(h);
        size_t off = sizeof(*e);
        const struct nlattr *tb[NLMSGERR_ATTR_MAX + 1];

        if (!(h->nlmsg_flags & NLM_F_ACK_TLVS))
                return;
        if (!(h->nlmsg_flags & NLM_F_CAPPED))
                off += e->msg.nlmsg_len - NLMSG_HDRLEN;
        if (NLMSG_HDRLEN + off > h->nlmsg_len)
                return;
        kg_parse((const char *) e + off, h->nlmsg_len - NLMSG_HDRLEN - off, tb, NLMSGERR_ATTR_MAX);
        if (tb[NLMSGERR_ATTR_MSG])
                snprintf(kg_extack, sizeof(kg_extack), "%s", (const char *) kg_data(tb[NLMSGERR_ATTR_MSG]));
}

/*
 * Send the built request. For each data message, call cb (may be NULL).
 * Returns the kernel's error, 0 on success.
 */
static inline int kg_transact(KgSock *s, int (*cb)(const struct nlmsghdr *h, void *userdata),
                              void *userdata) {
        struct nlmsghdr *h = (struct nlmsghdr *) s->buf;
        int r = 0;

        h->nlmsg_len = s->len;
        kg_extack[0] = 0;
        if (send(s->fd, s->buf, s->len, 0) < 0)
                return -errno;
        for (;;) {
                ssize_t n = recv(s->fd, s->rbuf, KG_BUF_SIZE, 0);

                if (n < 0)
                        return -errno;
                for (h = (struct nlmsghdr *) s->rbuf; NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
                        if (h->nlmsg_seq != s->seq)
                                continue;
                        if (h->nlmsg_type == NLMSG_ERROR) {
                                const struct nlmsgerr *e = NLMSG_DATA(h);

                                kg_extack_parse(h);
                                return e->error ? e->error : r;
                        }
                        if (h->nlmsg_type == NLMSG_DONE)
                                return r;
                        if (cb && r == 0)
                                r = cb(h, userdata);
                }
        }
}

static inline int kg_resolve_cb(const struct nlmsghdr *h, void *userdata) {
        const struct nlattr *tb[CTRL_ATTR_MAX + 1];

        kg_parse((const char *) NLMSG_DATA(h) + GENL_HDRLEN, h->nlmsg_len - NLMSG_HDRLEN - GENL_HDRLEN,
                 tb, CTRL_ATTR_MAX);
        if (tb[CTRL_ATTR_FAMILY_ID])
                *(uint16_t *) userdata = *(const uint16_t *) kg_data(tb[CTRL_ATTR_FAMILY_ID]);
        return 0;
}

/* Open a socket and resolve the family; -ENOENT if it is not registered. */
static inline int kg_open(KgSock *s) {
        struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
        int one = 1, bufsize = 4 * KG_BUF_SIZE, r;

        memset(s, 0, sizeof(*s));
        s->buf = malloc(KG_BUF_SIZE);
        s->rbuf = malloc(KG_BUF_SIZE);
        s->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
        if (!s->buf || !s->rbuf || s->fd < 0)
                return -errno;
        setsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &bufsize, sizeof(bufsize));
        setsockopt(s->fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
        setsockopt(s->fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
        if (bind(s->fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return -errno;
        kg_begin(s, GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 0);
        ((struct genlmsghdr *) NLMSG_DATA((struct nlmsghdr *) s->buf))->version = 1;
        kg_put(s, CTRL_ATTR_FAMILY_NAME, KSMD_HELPER_GENL_NAME, sizeof(KSMD_HELPER_GENL_NAME));
        r = kg_transact(s, kg_resolve_cb, &s->family);
        if (r < 0)
                return r;
        return s->family ? 0 : -ENOENT;
}

static inline void kg_close(KgSock *s) {
        if (s->fd > 0)
                close(s->fd);
        free(s->buf);
        free(s->rbuf);
}

/* One merge request item, and its outcome. */
typedef struct {
        uint32_t pidfd;         /* target process */
        uint64_t addr;
        uint32_t src_pidfd;     /* source process, used when handle == 0 */
        uint64_t src_addr;
        uint64_t handle;        /* 0: the source is src_pidfd/src_addr */
        uint32_t result;
        uint32_t reason;
        uint64_t out_handle;    /* 0 if none */
} KgItem;

typedef struct {
        KgItem *items;
        size_t n, i;
} KgItemsReply;

static inline int kg_items_cb(const struct nlmsghdr *h, void *userdata) {
        KgItemsReply *rep = userdata;
        const struct nlattr *tb[KSMD_HELPER_A_MAX + 1], *itb[KSMD_HELPER_ITEM_A_MAX + 1], *a;
        const struct nlattr *list;
        size_t len;

        kg_parse((const char *) NLMSG_DATA(h) + GENL_HDRLEN, h->nlmsg_len - NLMSG_HDRLEN - GENL_HDRLEN,
                 tb, KSMD_HELPER_A_MAX);
        list = tb[KSMD_HELPER_A_ITEMS];
        if (!list)
                return -EBADMSG;
        len = kg_dlen(list);
        for (a = kg_data(list); len >= NLA_HDRLEN && a->nla_len >= NLA_HDRLEN;
             a = (const void *) ((const char *) a + NLA_ALIGN(a->nla_len))) {
                KgItem *it;

                if (rep->i >= rep->n)
                        return -EBADMSG;
                it = &rep->items[rep->i++];
                kg_parse(kg_data(a), kg_dlen(a), itb, KSMD_HELPER_ITEM_A_MAX);
                if (!itb[KSMD_HELPER_ITEM_A_RESULT])
                        return -EBADMSG;
                it->result = kg_u32(itb[KSMD_HELPER_ITEM_A_RESULT]);
                it->reason = itb[KSMD_HELPER_ITEM_A_REASON] ? kg_u32(itb[KSMD_HELPER_ITEM_A_REASON]) : 0;
                it->out_handle = itb[KSMD_HELPER_ITEM_A_HANDLE] ? kg_u64(itb[KSMD_HELPER_ITEM_A_HANDLE]) : 0;
                if ((size_t) NLA_ALIGN(a->nla_len) >= len)
                        break;
                len -= NLA_ALIGN(a->nla_len);
        }
        return 0;
}

/* MERGE (zero = 0) or MERGE_ZERO (zero = 1) of n items; fills the outcomes. */
static inline int kg_merge(KgSock *s, KgItem *items, size_t n, int zero) {
        KgItemsReply rep = { .items = items, .n = n };
        int r;

        kg_begin(s, s->family, zero ? KSMD_HELPER_CMD_MERGE_ZERO : KSMD_HELPER_CMD_MERGE, 0);
        kg_nest_start(s, KSMD_HELPER_A_ITEMS);
        for (size_t i = 0; i < n; i++) {
                kg_nest_start(s, KSMD_HELPER_A_ITEM);
                kg_put_u32(s, KSMD_HELPER_ITEM_A_PIDFD, items[i].pidfd);
                kg_put_u64(s, KSMD_HELPER_ITEM_A_ADDR, items[i].addr);
                if (!zero && !items[i].handle) {
                        kg_put_u32(s, KSMD_HELPER_ITEM_A_SRC_PIDFD, items[i].src_pidfd);
                        kg_put_u64(s, KSMD_HELPER_ITEM_A_SRC_ADDR, items[i].src_addr);
                } else if (!zero) {
                        kg_put_u64(s, KSMD_HELPER_ITEM_A_HANDLE, items[i].handle);
                }
                kg_nest_end(s);
        }
        kg_nest_end(s);
        r = kg_transact(s, kg_items_cb, &rep);
        if (r == 0 && rep.i != n)
                r = -EBADMSG;
        return r;
}

/*
 * kg_merge(), then the items answered BUSY again, alone, up to `tries` more
 * times, 20 ms apart. Only those: an item sent again after it merged would
 * come back ALREADY and hide that it merged.
 */
static inline int kg_merge_retrying_busy(KgSock *s, KgItem *items, size_t n, int zero, int tries) {
        KgItem *again = calloc(n ? n : 1, sizeof(*again));
        size_t *at = calloc(n ? n : 1, sizeof(*at));
        int r = again && at ? kg_merge(s, items, n, zero) : -ENOMEM;

        for (int t = 0; r == 0 && t < tries; t++) {
                size_t k = 0;

                for (size_t i = 0; i < n; i++)
                        if (items[i].result == KSMD_HELPER_RESULT_BUSY) {
                                at[k] = i;
                                again[k++] = items[i];
                        }
                if (k == 0)
                        break;
                usleep(20000);
                r = kg_merge(s, again, k, zero);
                for (size_t j = 0; r == 0 && j < k; j++)
                        items[at[j]] = again[j];
        }
        free(again);
        free(at);
        return r;
}

/* One node of INFO's pool. */
typedef struct {
        uint32_t node;
        uint64_t f[KSMD_HELPER_POOL_A_MAX + 1]; /* indexed by KSMD_HELPER_POOL_A_* (the u64 ones) */
} KgPoolNode;

#define KG_POOL_NODES 8

typedef struct {
        uint32_t abi, max_batch;
        uint64_t features;
        uint64_t stats[KSMD_HELPER_STAT_MAX + 1];
        KgPoolNode pool[KG_POOL_NODES];
        size_t n_pool;
} KgInfo;

/* INFO's pool on a node: every figure of a node it does not list is 0. */
static inline const KgPoolNode *kg_pool_node(const KgInfo *info, uint32_t node) {
        static const KgPoolNode none;

        for (size_t i = 0; i < info->n_pool; i++)
                if (info->pool[i].node == node)
                        return &info->pool[i];
        return &none;
}

/* KSMD_HELPER_A_POOL: each node must carry its number and every figure. */
static inline int kg_pool_parse(const struct nlattr *pool, KgInfo *info) {
        size_t len = kg_dlen(pool);

        for (const struct nlattr *a = kg_data(pool); len >= NLA_HDRLEN && a->nla_len >= NLA_HDRLEN;
             a = (const void *) ((const char *) a + NLA_ALIGN(a->nla_len))) {
                const struct nlattr *pt[KSMD_HELPER_POOL_A_MAX + 1];
                KgPoolNode *n;

                if ((a->nla_type & NLA_TYPE_MASK) != KSMD_HELPER_A_POOL_NODE ||
                    info->n_pool >= KG_POOL_NODES)
                        return -EBADMSG;
                n = &info->pool[info->n_pool++];
                kg_parse(kg_data(a), kg_dlen(a), pt, KSMD_HELPER_POOL_A_MAX);
                if (!pt[KSMD_HELPER_POOL_A_NODE])
                        return -EBADMSG;
                n->node = kg_u32(pt[KSMD_HELPER_POOL_A_NODE]);
                for (int i = KSMD_HELPER_POOL_A_NODE + 1; i <= KSMD_HELPER_POOL_A_MAX; i++) {
                        if (i == KSMD_HELPER_POOL_A_PAD)
                                continue;
                        if (!pt[i])
                                return -EBADMSG;
                        n->f[i] = kg_u64(pt[i]);
                }
                if ((size_t) NLA_ALIGN(a->nla_len) >= len)
                        break;
                len -= NLA_ALIGN(a->nla_len);
        }
        return 0;
}

static inline int kg_info_cb(const struct nlmsghdr *h, void *userdata) {
        KgInfo *info = userdata;
        const struct nlattr *tb[KSMD_HELPER_A_MAX + 1], *st[KSMD_HELPER_STAT_MAX + 1];

        kg_parse((const char *) NLMSG_DATA(h) + GENL_HDRLEN, h->nlmsg_len - NLMSG_HDRLEN - GENL_HDRLEN,
                 tb, KSMD_HELPER_A_MAX);
        if (!tb[KSMD_HELPER_A_ABI_VERSION] || !tb[KSMD_HELPER_A_FEATURES] || !tb[KSMD_HELPER_A_MAX_BATCH] ||
            !tb[KSMD_HELPER_A_STATS] || !tb[KSMD_HELPER_A_MODULE_VERSION] ||
            !tb[KSMD_HELPER_A_KERNEL_RELEASE])
                return -EBADMSG;
        info->abi = kg_u32(tb[KSMD_HELPER_A_ABI_VERSION]);
        info->features = kg_u64(tb[KSMD_HELPER_A_FEATURES]);
        info->max_batch = kg_u32(tb[KSMD_HELPER_A_MAX_BATCH]);
        kg_parse(kg_data(tb[KSMD_HELPER_A_STATS]), kg_dlen(tb[KSMD_HELPER_A_STATS]), st,
                 KSMD_HELPER_STAT_MAX);
        for (int i = 1; i <= KSMD_HELPER_STAT_MAX; i++) {
                if (i == KSMD_HELPER_STAT_PAD)
                        continue;
                if (!st[i])
                        return -EBADMSG;
                info->stats[i] = kg_u64(st[i]);
        }
        if (!tb[KSMD_HELPER_A_POOL])
                return -EBADMSG;
        return kg_pool_parse(tb[KSMD_HELPER_A_POOL], info);
}

static inline int kg_info(KgSock *s, KgInfo *info) {
        memset(info, 0, sizeof(*info));
        kg_begin(s, s->family, KSMD_HELPER_CMD_INFO, 0);
        return kg_transact(s, kg_info_cb, info);
}

static inline int kg_count_cb(const struct nlmsghdr *h, void *userdata) {
        const struct nlattr *tb[KSMD_HELPER_A_MAX + 1];

        kg_parse((const char *) NLMSG_DATA(h) + GENL_HDRLEN, h->nlmsg_len - NLMSG_HDRLEN - GENL_HDRLEN,
                 tb, KSMD_HELPER_A_MAX);
        if (!tb[KSMD_HELPER_A_COUNT])
                return -EBADMSG;
        *(uint64_t *) userdata = kg_u64(tb[KSMD_HELPER_A_COUNT]);
        return 0;
}

static inline int kg_unmerge(KgSock *s, uint32_t pidfd, uint64_t addr, uint64_t len, uint64_t *ret_count) {
        kg_begin(s, s->family, KSMD_HELPER_CMD_UNMERGE, 0);
        kg_put_u32(s, KSMD_HELPER_A_PIDFD, pidfd);
        kg_put_u64(s, KSMD_HELPER_A_ADDR, addr);
        kg_put_u64(s, KSMD_HELPER_A_LENGTH, len);
        return kg_transact(s, kg_count_cb, ret_count);
}

typedef struct {
        uint64_t pages, mapped, last_handle;
        uint64_t handle_of_interest;
        uint32_t mapcount_of_interest;
} KgDump;

static inline int kg_pages_cb(const struct nlmsghdr *h, void *userdata) {
        const struct nlattr *tb[KSMD_HELPER_A_MAX + 1];
        KgDump *d = userdata;

        kg_parse((const char *) NLMSG_DATA(h) + GENL_HDRLEN, h->nlmsg_len - NLMSG_HDRLEN - GENL_HDRLEN,
                 tb, KSMD_HELPER_A_MAX);
        if (!tb[KSMD_HELPER_A_HANDLE] || !tb[KSMD_HELPER_A_MAPCOUNT])
                return -EBADMSG;
        d->pages++;
        d->mapped += kg_u32(tb[KSMD_HELPER_A_MAPCOUNT]);
        d->last_handle = kg_u64(tb[KSMD_HELPER_A_HANDLE]);
        if (d->last_handle == d->handle_of_interest)
                d->mapcount_of_interest = kg_u32(tb[KSMD_HELPER_A_MAPCOUNT]);
        return 0;
}

static inline int kg_get_pages(KgSock *s, KgDump *d) {
        kg_begin(s, s->family, KSMD_HELPER_CMD_GET_PAGES, NLM_F_DUMP);
        return kg_transact(s, kg_pages_cb, d);
}

static inline const char *kg_result_name(uint32_t r) {
        static const char *const names[] = {
                "merged", "already", "differs", "busy", "changed", "unsupported",
                "no-process", "no-page", "no-handle", "no-memory", "bad-pidfd", "no-access",
        };
        return r < sizeof(names) / sizeof(names[0]) ? names[r] : "?";
}

#endif
