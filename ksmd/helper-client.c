/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <string.h>

#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>

#include "helper-client.h"

struct HelperClient {
        struct nl_sock *sock;
        int family;
};

/* State shared by the receive callbacks of one request. */
typedef struct Request {
        int error;                     /* kernel's -errno from the ack, 0 */
        bool done;
        HelperInfo *info;
        HelperMergeResult *results;
        size_t n_results;
        size_t n_seen;
        uint64_t *count;               /* UNMERGE reply */
        HelperPage *pages;             /* GET_PAGES dump, grown as it arrives */
        size_t n_pages;
        bool dump;
} Request;

static int errno_from_nl(int nlerr) {
        switch (-nlerr) {
        case NLE_NOMEM:
                return -ENOMEM;
        case NLE_PERM:
                return -EPERM;
        case NLE_OBJ_NOTFOUND:
                return -ENOENT;
        case NLE_INVAL:
                return -EINVAL;
        case NLE_MSGSIZE:
                return -EMSGSIZE;
        case NLE_RANGE:
                return -ERANGE;
        case NLE_AGAIN:
                return -EAGAIN;
        default:
                return -EIO;
        }
}

int helper_client_new(HelperClient **ret) {
        _cleanup_(helper_client_freep) HelperClient *c = NULL;
        int r;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;

        c->sock = nl_socket_alloc();
        if (!c->sock)
                return -ENOMEM;

        r = genl_connect(c->sock);
        if (r < 0)
                return errno_from_nl(r);

        /* The module answers synchronously; a reply larger than a page is normal. */
        (void) nl_socket_set_msg_buf_size(c->sock, 1 << 20);
        nl_socket_disable_auto_ack(c->sock);

        r = genl_ctrl_resolve(c->sock, KSMD_HELPER_GENL_NAME);
        if (r < 0)
                return -ENOENT;
        c->family = r;

        *ret = TAKE_PTR(c);
        return 0;
}

HelperClient *helper_client_free(HelperClient *c) {
        if (!c)
                return NULL;
        nl_socket_free(c->sock);
        free(c);
        return NULL;
}

static int on_error(struct sockaddr_nl *nla, struct nlmsgerr *err, void *userdata) {
        Request *req = userdata;

        req->error = err->error;
        req->done = true;
        return NL_STOP;
}

static int on_finish(struct nl_msg *msg, void *userdata) {
        Request *req = userdata;

        req->done = true;
        return NL_STOP;
}

static int on_ack(struct nl_msg *msg, void *userdata) {
        Request *req = userdata;

        req->done = true;
        return NL_STOP;
}

/* One KSMD_HELPER_A_POOL_NODE; one without its node number is ignored. */
static void parse_pool_node(struct nlattr *node, HelperInfo *info) {
        HelperPoolNode p = {};
        bool has_node = false;
        struct nlattr *a;
        int rem;

        nla_for_each_nested(a, node, rem) {
                int t = nla_type(a);

                if (t == KSMD_HELPER_POOL_A_NODE && nla_len(a) == sizeof(uint32_t)) {
                        p.node = nla_get_u32(a);
                        has_node = true;
                } else if (t > KSMD_HELPER_POOL_A_NODE && t <= KSMD_HELPER_POOL_A_MAX &&
                           nla_len(a) == sizeof(uint64_t))
                        p.figures[t] = nla_get_u64(a);
        }
        if (has_node && info->n_pool < HELPER_POOL_NODES_MAX)
                info->pool[info->n_pool++] = p;
}

static void parse_info(struct nlattr **tb, HelperInfo *info) {
        if (tb[KSMD_HELPER_A_ABI_VERSION])
                info->abi_version = nla_get_u32(tb[KSMD_HELPER_A_ABI_VERSION]);
        if (tb[KSMD_HELPER_A_MODULE_VERSION])
                nla_strlcpy(info->module_version, tb[KSMD_HELPER_A_MODULE_VERSION],
                            sizeof(info->module_version));
        if (tb[KSMD_HELPER_A_KERNEL_RELEASE])
                nla_strlcpy(info->kernel_release, tb[KSMD_HELPER_A_KERNEL_RELEASE],
                            sizeof(info->kernel_release));
        if (tb[KSMD_HELPER_A_FEATURES])
                info->features = nla_get_u64(tb[KSMD_HELPER_A_FEATURES]);
        if (tb[KSMD_HELPER_A_MAX_BATCH])
                info->max_batch = nla_get_u32(tb[KSMD_HELPER_A_MAX_BATCH]);
        if (tb[KSMD_HELPER_A_STATS]) {
                struct nlattr *a;
                int rem;

                nla_for_each_nested(a, tb[KSMD_HELPER_A_STATS], rem) {
                        int t = nla_type(a);

                        if (t > 0 && t <= KSMD_HELPER_STAT_MAX && nla_len(a) == sizeof(uint64_t))
                                info->stats[t] = nla_get_u64(a);
                }
        }
        if (tb[KSMD_HELPER_A_POOL]) {
                struct nlattr *a;
                int rem;

                nla_for_each_nested(a, tb[KSMD_HELPER_A_POOL], rem)
                        if (nla_type(a) == KSMD_HELPER_A_POOL_NODE)
                                parse_pool_node(a, info);
        }
}

static int parse_items(struct nlattr *items, Request *req) {
        struct nlattr *item;
        int rem;

        nla_for_each_nested(item, items, rem) {
                struct nlattr *tb[KSMD_HELPER_ITEM_A_MAX + 1];
                HelperMergeResult *res;
                int r;

                if (nla_type(item) != KSMD_HELPER_A_ITEM)
                        continue;
                if (req->n_seen >= req->n_results)
                        return -EBADMSG;

                r = nla_parse_nested(tb, KSMD_HELPER_ITEM_A_MAX, item, NULL);
                if (r < 0 || !tb[KSMD_HELPER_ITEM_A_RESULT])
                        return -EBADMSG;

                res = &req->results[req->n_seen++];
                res->result = nla_get_u32(tb[KSMD_HELPER_ITEM_A_RESULT]);
                res->reason = tb[KSMD_HELPER_ITEM_A_REASON] ?
                        nla_get_u32(tb[KSMD_HELPER_ITEM_A_REASON]) : KSMD_HELPER_REASON_NONE;
                res->handle = tb[KSMD_HELPER_ITEM_A_HANDLE] ?
                        nla_get_u64(tb[KSMD_HELPER_ITEM_A_HANDLE]) : 0;
        }
        return 0;
}

static int on_valid(struct nl_msg *msg, void *userdata) {
        Request *req = userdata;
        struct nlattr *tb[KSMD_HELPER_A_MAX + 1];
        int r;

        r = genlmsg_parse(nlmsg_hdr(msg), 0, tb, KSMD_HELPER_A_MAX, NULL);
        if (r < 0) {
                req->error = -EBADMSG;
                return NL_STOP;
        }

        if (req->info)
                parse_info(tb, req->info);
        if (req->count && tb[KSMD_HELPER_A_COUNT])
                *req->count = nla_get_u64(tb[KSMD_HELPER_A_COUNT]);
        if (req->dump && tb[KSMD_HELPER_A_HANDLE] && tb[KSMD_HELPER_A_MAPCOUNT]) {
                HelperPage *p;

                p = realloc(req->pages, (req->n_pages + 1) * sizeof(*p));
                if (!p) {
                        req->error = -ENOMEM;
                        return NL_STOP;
                }
                req->pages = p;
                req->pages[req->n_pages++] = (HelperPage) {
                        .handle = nla_get_u64(tb[KSMD_HELPER_A_HANDLE]),
                        .mapcount = nla_get_u32(tb[KSMD_HELPER_A_MAPCOUNT]),
                };
        }
        if (req->results && tb[KSMD_HELPER_A_ITEMS]) {
                r = parse_items(tb[KSMD_HELPER_A_ITEMS], req);
                if (r < 0) {
                        req->error = r;
                        return NL_STOP;
                }
        }
        return NL_OK;
}

/*
 * Sends msg (consumed) and runs callbacks until the kernel's ack, or for a
 * dump until its NLMSG_DONE.
 */
static int transact(HelperClient *c, struct nl_msg *msg, Request *req) {
        struct nl_cb *cb;
        int r;

        nlmsg_hdr(msg)->nlmsg_flags |= req->dump ? NLM_F_DUMP : NLM_F_ACK;
        r = nl_send_auto(c->sock, msg);
        nlmsg_free(msg);
        if (r < 0)
                return errno_from_nl(r);

        cb = nl_cb_alloc(NL_CB_DEFAULT);
        if (!cb)
                return -ENOMEM;
        nl_cb_err(cb, NL_CB_CUSTOM, on_error, req);
        nl_cb_set(cb, NL_CB_ACK, NL_CB_CUSTOM, on_ack, req);
        nl_cb_set(cb, NL_CB_FINISH, NL_CB_CUSTOM, on_finish, req);
        nl_cb_set(cb, NL_CB_VALID, NL_CB_CUSTOM, on_valid, req);

        while (!req->done && req->error == 0) {
                r = nl_recvmsgs(c->sock, cb);
                if (r < 0 && req->error == 0) {
                        req->error = errno_from_nl(r);
                        break;
                }
        }
        nl_cb_put(cb);
        return req->error;
}

/*
 * A request of payload_bytes of attributes. nlmsg_alloc() gives only a page,
 * which a MERGE of more than about 90 items outgrows: size it instead.
 */
static struct nl_msg *new_request(HelperClient *c, uint8_t cmd, size_t payload_bytes) {
        struct nl_msg *msg;

        msg = nlmsg_alloc_size(NLMSG_HDRLEN + GENL_HDRLEN + MAX(payload_bytes, (size_t) 256));
        if (!msg)
                return NULL;
        if (!genlmsg_put(msg, NL_AUTO_PORT, NL_AUTO_SEQ, c->family, 0, 0, cmd,
                         KSMD_HELPER_GENL_VERSION)) {
                nlmsg_free(msg);
                return NULL;
        }
        return msg;
}

int helper_client_info(HelperClient *c, HelperInfo *ret) {
        HelperInfo info = {};
        Request req = { .info = &info };
        struct nl_msg *msg;
        int r;

        msg = new_request(c, KSMD_HELPER_CMD_INFO, 0);
        if (!msg)
                return -ENOMEM;

        r = transact(c, msg, &req);
        if (r < 0)
                return r;
        if (info.abi_version == 0)
                return -EBADMSG;

        *ret = info;
        return 0;
}

static int put_item(struct nl_msg *msg, bool zero, const HelperMergeItem *it) {
        struct nlattr *item;

        item = nla_nest_start(msg, KSMD_HELPER_A_ITEM);
        if (!item)
                return -EMSGSIZE;
        if (nla_put_u32(msg, KSMD_HELPER_ITEM_A_PIDFD, (uint32_t) it->pidfd) < 0 ||
            nla_put_u64(msg, KSMD_HELPER_ITEM_A_ADDR, it->addr) < 0)
                return -EMSGSIZE;
        if (!zero) {
                if (it->handle != 0) {
                        if (nla_put_u64(msg, KSMD_HELPER_ITEM_A_HANDLE, it->handle) < 0)
                                return -EMSGSIZE;
                } else if (nla_put_u32(msg, KSMD_HELPER_ITEM_A_SRC_PIDFD, (uint32_t) it->src_pidfd) < 0 ||
                           nla_put_u64(msg, KSMD_HELPER_ITEM_A_SRC_ADDR, it->src_addr) < 0)
                        return -EMSGSIZE;
        }
        nla_nest_end(msg, item);
        return 0;
}

int helper_client_merge(HelperClient *c, bool zero, const HelperMergeItem *items, size_t n,
                        HelperMergeResult *results) {
        Request req = { .results = results, .n_results = n };
        struct nlattr *list;
        size_t item_bytes;
        struct nl_msg *msg;
        int r;

        if (n == 0)
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                if (items[i].pidfd < 0 || (!zero && items[i].handle == 0 && items[i].src_pidfd < 0))
                        return -EBADF;

        /* Per item: its nest, PIDFD, ADDR and at most SRC_PIDFD + SRC_ADDR; plus the ITEMS nest. */
        item_bytes = (size_t) (nla_total_size(0) + nla_total_size(4) + nla_total_size(8) +
                               nla_total_size(4) + nla_total_size(8));
        msg = new_request(c, zero ? KSMD_HELPER_CMD_MERGE_ZERO : KSMD_HELPER_CMD_MERGE,
                          (size_t) nla_total_size(0) + n * item_bytes);
        if (!msg)
                return -ENOMEM;

        list = nla_nest_start(msg, KSMD_HELPER_A_ITEMS);
        if (!list)
                goto fail;
        for (size_t i = 0; i < n; i++)
                if (put_item(msg, zero, &items[i]) < 0)
                        goto fail;
        nla_nest_end(msg, list);

        r = transact(c, msg, &req);
        if (r < 0)
                return r;
        if (req.n_seen != n)
                return -EBADMSG;
        return 0;

fail:
        nlmsg_free(msg);
        return -EMSGSIZE;
}

int helper_client_unmerge(HelperClient *c, int pidfd, uint64_t addr, uint64_t length, uint64_t *ret_count) {
        uint64_t count = 0;
        Request req = { .count = &count };
        struct nl_msg *msg;
        int r;

        if (pidfd < 0)
                return -EBADF;
        msg = new_request(c, KSMD_HELPER_CMD_UNMERGE, 0);
        if (!msg)
                return -ENOMEM;
        if (nla_put_u32(msg, KSMD_HELPER_A_PIDFD, (uint32_t) pidfd) < 0 ||
            nla_put_u64(msg, KSMD_HELPER_A_ADDR, addr) < 0 ||
            nla_put_u64(msg, KSMD_HELPER_A_LENGTH, length) < 0) {
                nlmsg_free(msg);
                return -EMSGSIZE;
        }
        r = transact(c, msg, &req);
        if (r < 0)
                return r;
        *ret_count = count;
        return 0;
}

int helper_client_get_pages(HelperClient *c, HelperPage **ret, size_t *ret_n) {
        Request req = { .dump = true };
        struct nl_msg *msg;
        int r;

        msg = new_request(c, KSMD_HELPER_CMD_GET_PAGES, 0);
        if (!msg)
                return -ENOMEM;
        r = transact(c, msg, &req);
        if (r < 0) {
                free(req.pages);
                return r;
        }
        *ret = req.pages;
        *ret_n = req.n_pages;
        return 0;
}

const char *helper_result_to_string(uint32_t result) {
        static const char *const table[] = {
                [KSMD_HELPER_RESULT_MERGED] = "merged",
                [KSMD_HELPER_RESULT_ALREADY] = "already-shared",
                [KSMD_HELPER_RESULT_DIFFERS] = "differs",
                [KSMD_HELPER_RESULT_BUSY] = "busy",
                [KSMD_HELPER_RESULT_CHANGED] = "changed",
                [KSMD_HELPER_RESULT_UNSUPPORTED] = "unsupported",
                [KSMD_HELPER_RESULT_NO_PROCESS] = "no-process",
                [KSMD_HELPER_RESULT_NO_PAGE] = "no-page",
                [KSMD_HELPER_RESULT_NO_HANDLE] = "no-handle",
                [KSMD_HELPER_RESULT_NO_MEMORY] = "no-memory",
                [KSMD_HELPER_RESULT_BAD_PIDFD] = "bad-pidfd",
                [KSMD_HELPER_RESULT_NO_ACCESS] = "no-access",
        };

        return result < ELEMENTSOF(table) && table[result] ? table[result] : "unknown";
}

const char *helper_reason_to_string(uint32_t reason) {
        static const char *const table[] = {
                [KSMD_HELPER_REASON_NONE] = "none",
                [KSMD_HELPER_REASON_NOT_ANON] = "not private anonymous memory",
                [KSMD_HELPER_REASON_HUGETLB] = "hugetlb mapping",
                [KSMD_HELPER_REASON_PFNMAP] = "PFN/IO mapping",
                [KSMD_HELPER_REASON_THP] = "huge page that could not be split",
                [KSMD_HELPER_REASON_KSM] = "page belongs to the kernel's KSM",
                [KSMD_HELPER_REASON_LOCKED_VMA] = "mapping does not allow it",
                [KSMD_HELPER_REASON_SAME_PAGE] = "target and source are the same page",
                [KSMD_HELPER_REASON_PINNED] = "the process holds pinned or locked memory (Linux 6.1: a "
                                              "read-only long-term pin could see stale data)",
        };

        return reason < ELEMENTSOF(table) && table[reason] ? table[reason] : "unknown";
}
