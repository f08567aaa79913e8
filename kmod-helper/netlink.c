// SPDX-License-Identifier: GPL-2.0
/*
 * DOC: generic netlink interface
 *
 * The commands and attributes are documented in <linux/ksmd_helper.h>.
 * Each command has its own policy: an attribute it does not take is
 * refused, every fixed-size attribute must have exactly its size, and a
 * request is parsed and checked whole before any item runs, so a malformed
 * request changes nothing.
 *
 * Permission: GENL_ADMIN_PERM (CAP_NET_ADMIN) on every op, and
 * CAP_SYS_ADMIN in the initial user namespace, checked here, since the
 * commands rewrite other processes' page tables. Then merge.c checks, per
 * process named, that the sender may read it.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/capability.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/nodemask.h>
#include <linux/slab.h>
#include <linux/utsname.h>
#include <net/genetlink.h>
#include <linux/ksmd_helper.h>

#include "merge.h"
#include "netlink.h"
#include "pages.h"
#include "pool.h"
#include "version.h"

static struct genl_family kh_genl_family;

/* ABI 1 named processes by pid: say what replaced them. */
static const char kh_pid_v1_msg[] =
	"pid attributes are refused since ABI 2: name processes by pidfd";

static const struct nla_policy kh_merge_item_policy[KSMD_HELPER_ITEM_A_MAX + 1] = {
	[KSMD_HELPER_ITEM_A_PID_V1] = { .type = NLA_REJECT, .reject_message = kh_pid_v1_msg },
	[KSMD_HELPER_ITEM_A_ADDR] = { .type = NLA_U64 },
	[KSMD_HELPER_ITEM_A_SRC_PID_V1] = { .type = NLA_REJECT, .reject_message = kh_pid_v1_msg },
	[KSMD_HELPER_ITEM_A_SRC_ADDR] = { .type = NLA_U64 },
	[KSMD_HELPER_ITEM_A_HANDLE] = NLA_POLICY_MIN(NLA_U64, 1),
	[KSMD_HELPER_ITEM_A_PIDFD] = { .type = NLA_U32 },
	[KSMD_HELPER_ITEM_A_SRC_PIDFD] = { .type = NLA_U32 },
};

static const struct nla_policy kh_zero_item_policy[KSMD_HELPER_ITEM_A_MAX + 1] = {
	[KSMD_HELPER_ITEM_A_PID_V1] = { .type = NLA_REJECT, .reject_message = kh_pid_v1_msg },
	[KSMD_HELPER_ITEM_A_ADDR] = { .type = NLA_U64 },
	[KSMD_HELPER_ITEM_A_PIDFD] = { .type = NLA_U32 },
};

static const struct nla_policy kh_merge_items_policy[KSMD_HELPER_A_ITEMS_MAX + 1] = {
	[KSMD_HELPER_A_ITEM] = NLA_POLICY_NESTED(kh_merge_item_policy),
};

static const struct nla_policy kh_zero_items_policy[KSMD_HELPER_A_ITEMS_MAX + 1] = {
	[KSMD_HELPER_A_ITEM] = NLA_POLICY_NESTED(kh_zero_item_policy),
};

/* No attributes: strict validation refuses any. */
static const struct nla_policy kh_none_policy[KSMD_HELPER_A_MAX + 1] = {
};

static const struct nla_policy kh_merge_policy[KSMD_HELPER_A_MAX + 1] = {
	[KSMD_HELPER_A_FLAGS] = NLA_POLICY_MASK(NLA_U32, __KSMD_HELPER_F_ALL),
	[KSMD_HELPER_A_ITEMS] = NLA_POLICY_NESTED(kh_merge_items_policy),
};

static const struct nla_policy kh_merge_zero_policy[KSMD_HELPER_A_MAX + 1] = {
	[KSMD_HELPER_A_FLAGS] = NLA_POLICY_MASK(NLA_U32, __KSMD_HELPER_F_ALL),
	[KSMD_HELPER_A_ITEMS] = NLA_POLICY_NESTED(kh_zero_items_policy),
};

static const struct nla_policy kh_unmerge_policy[KSMD_HELPER_A_MAX + 1] = {
	[KSMD_HELPER_A_PID_V1] = { .type = NLA_REJECT, .reject_message = kh_pid_v1_msg },
	[KSMD_HELPER_A_PIDFD] = { .type = NLA_U32 },
	[KSMD_HELPER_A_ADDR] = { .type = NLA_U64 },
	[KSMD_HELPER_A_LENGTH] = NLA_POLICY_MIN(NLA_U64, 1),
};

static bool kh_capable(struct sk_buff *skb, struct netlink_ext_ack *extack)
{
	if (netlink_capable(skb, CAP_SYS_ADMIN))
		return true;
	NL_SET_ERR_MSG_MOD(extack, "CAP_SYS_ADMIN required");
	return false;
}

/* A user page address: page aligned and below the top of user space. */
static int kh_parse_addr(const struct nlattr *attr, unsigned long *ret,
			 struct netlink_ext_ack *extack)
{
	u64 addr = nla_get_u64(attr);

	if (!PAGE_ALIGNED(addr) || addr >= TASK_SIZE_MAX) {
		NL_SET_ERR_MSG_ATTR(extack, attr,
				    "address must be a page-aligned user address");
		return -EINVAL;
	}
	*ret = addr;
	return 0;
}

static int kh_parse_item(const struct nlattr *nest, struct kh_item *it,
			 bool zero, struct netlink_ext_ack *extack)
{
	struct nlattr *tb[KSMD_HELPER_ITEM_A_MAX + 1];
	bool by_pidfd;
	int r;

	r = nla_parse_nested(tb, KSMD_HELPER_ITEM_A_MAX, nest,
			     zero ? kh_zero_item_policy : kh_merge_item_policy,
			     extack);
	if (r < 0)
		return r;
	if (!tb[KSMD_HELPER_ITEM_A_PIDFD] || !tb[KSMD_HELPER_ITEM_A_ADDR]) {
		NL_SET_ERR_MSG_ATTR(extack, nest, "item needs PIDFD and ADDR");
		return -EINVAL;
	}
	it->pidfd = nla_get_u32(tb[KSMD_HELPER_ITEM_A_PIDFD]);
	r = kh_parse_addr(tb[KSMD_HELPER_ITEM_A_ADDR], &it->addr, extack);
	if (r < 0 || zero)
		return r;

	by_pidfd = tb[KSMD_HELPER_ITEM_A_SRC_PIDFD] || tb[KSMD_HELPER_ITEM_A_SRC_ADDR];
	if (by_pidfd == !!tb[KSMD_HELPER_ITEM_A_HANDLE] ||
	    (by_pidfd && (!tb[KSMD_HELPER_ITEM_A_SRC_PIDFD] ||
			  !tb[KSMD_HELPER_ITEM_A_SRC_ADDR]))) {
		NL_SET_ERR_MSG_ATTR(extack, nest,
				    "item needs exactly one source: SRC_PIDFD and SRC_ADDR, or HANDLE");
		return -EINVAL;
	}
	if (!by_pidfd) {
		it->by_handle = true;
		it->handle = nla_get_u64(tb[KSMD_HELPER_ITEM_A_HANDLE]);
		return 0;
	}
	it->src_pidfd = nla_get_u32(tb[KSMD_HELPER_ITEM_A_SRC_PIDFD]);
	return kh_parse_addr(tb[KSMD_HELPER_ITEM_A_SRC_ADDR], &it->src_addr,
			     extack);
}

static int kh_parse_items(struct genl_info *info, bool zero,
			  struct kh_item **ret_items, size_t *ret_n)
{
	struct nlattr *items_attr = info->attrs[KSMD_HELPER_A_ITEMS];
	struct kh_item *items;
	struct nlattr *nest;
	size_t n = 0, i = 0;
	int rem, r;

	if (!items_attr) {
		NL_SET_ERR_MSG_MOD(info->extack, "ITEMS attribute required");
		return -EINVAL;
	}
	nla_for_each_nested(nest, items_attr, rem)
		n++;
	if (!n) {
		NL_SET_ERR_MSG_ATTR(info->extack, items_attr, "empty batch");
		return -EINVAL;
	}
	if (n > KH_MAX_BATCH) {
		NL_SET_ERR_MSG_ATTR(info->extack, items_attr,
				    "batch larger than MAX_BATCH items");
		return -E2BIG;
	}

	items = kvcalloc(n, sizeof(*items), KH_GFP);
	if (!items)
		return -ENOMEM;
	nla_for_each_nested(nest, items_attr, rem) {
		r = kh_parse_item(nest, &items[i++], zero, info->extack);
		if (r < 0) {
			kvfree(items);
			return r;
		}
	}
	*ret_items = items;
	*ret_n = n;
	return 0;
}

/* Reply size for @n items: a nest with RESULT, REASON and HANDLE each. */
static size_t kh_items_reply_size(size_t n)
{
	size_t item = nla_total_size(0) + 2 * nla_total_size(sizeof(u32)) +
		      nla_total_size_64bit(sizeof(u64));

	return nla_total_size(0) + n * item;
}

static int kh_put_items(struct sk_buff *msg, const struct kh_item *items,
			size_t n)
{
	struct nlattr *list, *nest;
	size_t i;

	list = nla_nest_start(msg, KSMD_HELPER_A_ITEMS);
	if (!list)
		return -EMSGSIZE;
	for (i = 0; i < n; i++) {
		const struct kh_item *it = &items[i];

		nest = nla_nest_start(msg, KSMD_HELPER_A_ITEM);
		if (!nest ||
		    nla_put_u32(msg, KSMD_HELPER_ITEM_A_RESULT, it->result) ||
		    (it->result == KSMD_HELPER_RESULT_UNSUPPORTED &&
		     nla_put_u32(msg, KSMD_HELPER_ITEM_A_REASON, it->reason)) ||
		    (it->has_handle &&
		     nla_put_u64_64bit(msg, KSMD_HELPER_ITEM_A_HANDLE,
				       it->out_handle, KSMD_HELPER_ITEM_A_PAD)))
			return -EMSGSIZE;
		nla_nest_end(msg, nest);
	}
	nla_nest_end(msg, list);
	return 0;
}

static int kh_merge_common(struct sk_buff *skb, struct genl_info *info,
			   bool zero)
{
	struct kh_item *items;
	struct sk_buff *msg;
	size_t n;
	void *hdr;
	int r;

	if (!kh_capable(skb, info->extack))
		return -EPERM;
	r = kh_parse_items(info, zero, &items, &n);
	if (r < 0)
		return r;

	msg = genlmsg_new(kh_items_reply_size(n), KH_GFP);
	if (!msg) {
		r = -ENOMEM;
		goto out;
	}
	kh_merge_batch(items, n, zero);

	hdr = genlmsg_put_reply(msg, info, &kh_genl_family, 0,
				info->genlhdr->cmd);
	if (!hdr || kh_put_items(msg, items, n) < 0) {
		nlmsg_free(msg);
		r = -EMSGSIZE;
		goto out;
	}
	genlmsg_end(msg, hdr);
	r = genlmsg_reply(msg, info);
out:
	kvfree(items);
	return r;
}

static int kh_nl_merge(struct sk_buff *skb, struct genl_info *info)
{
	return kh_merge_common(skb, info, false);
}

static int kh_nl_merge_zero(struct sk_buff *skb, struct genl_info *info)
{
	return kh_merge_common(skb, info, true);
}

/* Say why kh_unmerge() could not use the pidfd in @attr, if it could not. */
static void kh_pidfd_extack(struct netlink_ext_ack *extack,
			    const struct nlattr *attr, int r)
{
	switch (r) {
	case -EBADF:
		NL_SET_ERR_MSG_ATTR(extack, attr, "not an open pidfd");
		break;
	case -ESRCH:
		NL_SET_ERR_MSG_ATTR(extack, attr,
				    "the pidfd's process exited or has no memory");
		break;
	case -EPERM:
		NL_SET_ERR_MSG_ATTR(extack, attr,
				    "no ptrace read access to the pidfd's process");
		break;
	}
}

static int kh_nl_unmerge(struct sk_buff *skb, struct genl_info *info)
{
	struct nlattr **attrs = info->attrs;
	unsigned long addr, len;
	struct sk_buff *msg;
	u64 count = 0;
	void *hdr;
	int r;

	if (!kh_capable(skb, info->extack))
		return -EPERM;
	if (GENL_REQ_ATTR_CHECK(info, KSMD_HELPER_A_PIDFD) ||
	    GENL_REQ_ATTR_CHECK(info, KSMD_HELPER_A_ADDR) ||
	    GENL_REQ_ATTR_CHECK(info, KSMD_HELPER_A_LENGTH))
		return -EINVAL;
	r = kh_parse_addr(attrs[KSMD_HELPER_A_ADDR], &addr, info->extack);
	if (r < 0)
		return r;
	len = nla_get_u64(attrs[KSMD_HELPER_A_LENGTH]);
	if (!PAGE_ALIGNED(len) || len > TASK_SIZE_MAX - addr) {
		NL_SET_ERR_MSG_ATTR(info->extack, attrs[KSMD_HELPER_A_LENGTH],
				    "length must be a page multiple within user space");
		return -EINVAL;
	}

	msg = genlmsg_new(NLMSG_GOODSIZE, KH_GFP);
	if (!msg)
		return -ENOMEM;
	r = kh_unmerge(nla_get_u32(attrs[KSMD_HELPER_A_PIDFD]), addr, len,
		       &count);
	kh_pages_gc();
	if (r < 0) {
		kh_pidfd_extack(info->extack, attrs[KSMD_HELPER_A_PIDFD], r);
		nlmsg_free(msg);
		return r;
	}
	hdr = genlmsg_put_reply(msg, info, &kh_genl_family, 0,
				KSMD_HELPER_CMD_UNMERGE);
	if (!hdr || nla_put_u64_64bit(msg, KSMD_HELPER_A_COUNT, count,
				      KSMD_HELPER_A_PAD)) {
		nlmsg_free(msg);
		return -EMSGSIZE;
	}
	genlmsg_end(msg, hdr);
	return genlmsg_reply(msg, info);
}

static int kh_put_stats(struct sk_buff *msg)
{
	u64 owned, mapped, saved, value;
	struct nlattr *nest;
	int i;

	kh_pages_count(&owned, &mapped, &saved);
	nest = nla_nest_start(msg, KSMD_HELPER_A_STATS);
	if (!nest)
		return -EMSGSIZE;
	for (i = KSMD_HELPER_STAT_UNSPEC + 1; i < __KSMD_HELPER_STAT_MAX; i++) {
		switch (i) {
		case KSMD_HELPER_STAT_PAD:
			continue;
		case KSMD_HELPER_STAT_PAGES_OWNED:
			value = owned;
			break;
		case KSMD_HELPER_STAT_PAGES_MAPPED:
			value = mapped;
			break;
		case KSMD_HELPER_STAT_BYTES_SAVED:
			value = (saved +
				 atomic64_read(&kh_stats[KSMD_HELPER_STAT_MERGED_ZERO])) *
				PAGE_SIZE;
			break;
		default:
			value = atomic64_read(&kh_stats[i]);
			break;
		}
		if (nla_put_u64_64bit(msg, i, value, KSMD_HELPER_STAT_PAD))
			return -EMSGSIZE;
	}
	nla_nest_end(msg, nest);
	return 0;
}

static int kh_put_pool_node(struct sk_buff *msg, int nid,
			    const struct kh_pool_stats *st)
{
	static const struct {
		int attr;
		size_t offset;
	} fields[] = {
		{ KSMD_HELPER_POOL_A_BLOCKS,
		  offsetof(struct kh_pool_stats, blocks) },
		{ KSMD_HELPER_POOL_A_USED_PAGES,
		  offsetof(struct kh_pool_stats, used_pages) },
		{ KSMD_HELPER_POOL_A_FREE_PAGES,
		  offsetof(struct kh_pool_stats, free_pages) },
		{ KSMD_HELPER_POOL_A_SINGLE_PAGES,
		  offsetof(struct kh_pool_stats, single_pages) },
		{ KSMD_HELPER_POOL_A_BLOCKS_TAKEN,
		  offsetof(struct kh_pool_stats, blocks_taken) },
		{ KSMD_HELPER_POOL_A_BLOCKS_RETURNED,
		  offsetof(struct kh_pool_stats, blocks_returned) },
		{ KSMD_HELPER_POOL_A_REUSED,
		  offsetof(struct kh_pool_stats, reused) },
		{ KSMD_HELPER_POOL_A_FALLBACKS,
		  offsetof(struct kh_pool_stats, fallbacks) },
	};
	struct nlattr *nest;
	size_t i;

	nest = nla_nest_start(msg, KSMD_HELPER_A_POOL_NODE);
	if (!nest || nla_put_u32(msg, KSMD_HELPER_POOL_A_NODE, nid))
		return -EMSGSIZE;
	for (i = 0; i < ARRAY_SIZE(fields); i++) {
		u64 v = *(const u64 *)((const char *)st + fields[i].offset);

		if (nla_put_u64_64bit(msg, fields[i].attr, v,
				      KSMD_HELPER_POOL_A_PAD))
			return -EMSGSIZE;
	}
	nla_nest_end(msg, nest);
	return 0;
}

static int kh_put_pool(struct sk_buff *msg)
{
	struct kh_pool_stats st;
	struct nlattr *nest;
	int nid;

	nest = nla_nest_start(msg, KSMD_HELPER_A_POOL);
	if (!nest)
		return -EMSGSIZE;
	for_each_node(nid) {
		if (kh_pool_stats(nid, &st) && kh_put_pool_node(msg, nid, &st))
			return -EMSGSIZE;
	}
	nla_nest_end(msg, nest);
	return 0;
}

/* What one node's KSMD_HELPER_A_POOL_NODE takes at most. */
#define KH_POOL_NODE_SIZE (nla_total_size(0) + nla_total_size(sizeof(u32)) + \
			   8 * nla_total_size_64bit(sizeof(u64)))

static int kh_nl_info(struct sk_buff *skb, struct genl_info *info)
{
	struct sk_buff *msg;
	void *hdr;

	if (!kh_capable(skb, info->extack))
		return -EPERM;
	kh_pages_gc();

	msg = genlmsg_new(NLMSG_GOODSIZE + num_possible_nodes() *
			  KH_POOL_NODE_SIZE, KH_GFP);
	if (!msg)
		return -ENOMEM;
	hdr = genlmsg_put_reply(msg, info, &kh_genl_family, 0,
				KSMD_HELPER_CMD_INFO);
	if (!hdr ||
	    nla_put_u32(msg, KSMD_HELPER_A_ABI_VERSION,
			KSMD_HELPER_ABI_VERSION) ||
	    nla_put_string(msg, KSMD_HELPER_A_MODULE_VERSION,
			   KSMD_HELPER_VERSION) ||
	    nla_put_string(msg, KSMD_HELPER_A_KERNEL_RELEASE,
			   init_utsname()->release) ||
	    nla_put_u64_64bit(msg, KSMD_HELPER_A_FEATURES, kh_merge_features(),
			      KSMD_HELPER_A_PAD) ||
	    nla_put_u32(msg, KSMD_HELPER_A_MAX_BATCH, KH_MAX_BATCH) ||
	    kh_put_stats(msg) || kh_put_pool(msg)) {
		nlmsg_free(msg);
		return -EMSGSIZE;
	}
	genlmsg_end(msg, hdr);
	return genlmsg_reply(msg, info);
}

static int kh_nl_get_pages_start(struct netlink_callback *cb)
{
	if (!kh_capable(cb->skb, cb->extack))
		return -EPERM;
	kh_pages_gc();
	cb->args[0] = 1;
	return 0;
}

static int kh_nl_get_pages_dump(struct sk_buff *skb,
				struct netlink_callback *cb)
{
	u64 handle = cb->args[0];
	u32 mapcount;
	void *hdr;

	while (kh_pages_next(&handle, &mapcount)) {
		hdr = genlmsg_put(skb, NETLINK_CB(cb->skb).portid,
				  cb->nlh->nlmsg_seq, &kh_genl_family,
				  NLM_F_MULTI, KSMD_HELPER_CMD_GET_PAGES);
		if (!hdr)
			break;
		if (nla_put_u64_64bit(skb, KSMD_HELPER_A_HANDLE, handle,
				      KSMD_HELPER_A_PAD) ||
		    nla_put_u32(skb, KSMD_HELPER_A_MAPCOUNT, mapcount)) {
			genlmsg_cancel(skb, hdr);
			break;
		}
		genlmsg_end(skb, hdr);
		handle++;
	}
	cb->args[0] = handle;
	return skb->len;
}

static const struct genl_ops kh_genl_ops[] = {
	{
		.cmd = KSMD_HELPER_CMD_INFO,
		.doit = kh_nl_info,
		.policy = kh_none_policy,
		.maxattr = KSMD_HELPER_A_MAX,
		.flags = GENL_ADMIN_PERM,
	}, {
		.cmd = KSMD_HELPER_CMD_MERGE,
		.doit = kh_nl_merge,
		.policy = kh_merge_policy,
		.maxattr = KSMD_HELPER_A_MAX,
		.flags = GENL_ADMIN_PERM,
	}, {
		.cmd = KSMD_HELPER_CMD_MERGE_ZERO,
		.doit = kh_nl_merge_zero,
		.policy = kh_merge_zero_policy,
		.maxattr = KSMD_HELPER_A_MAX,
		.flags = GENL_ADMIN_PERM,
	}, {
		.cmd = KSMD_HELPER_CMD_UNMERGE,
		.doit = kh_nl_unmerge,
		.policy = kh_unmerge_policy,
		.maxattr = KSMD_HELPER_A_MAX,
		.flags = GENL_ADMIN_PERM,
	}, {
		.cmd = KSMD_HELPER_CMD_GET_PAGES,
		.start = kh_nl_get_pages_start,
		.dumpit = kh_nl_get_pages_dump,
		.policy = kh_none_policy,
		.maxattr = KSMD_HELPER_A_MAX,
		.flags = GENL_ADMIN_PERM,
	},
};

/*
 * No resv_start_op: it stays 0, so every command has its header's reserved
 * field checked and strict validation, as a family new since 6.1 should.
 */
static struct genl_family kh_genl_family __ro_after_init = {
	.ops = kh_genl_ops,
	.n_ops = ARRAY_SIZE(kh_genl_ops),
	.name = KSMD_HELPER_GENL_NAME,
	.version = KSMD_HELPER_GENL_VERSION,
	.module = THIS_MODULE,
	.parallel_ops = true,
};

int __init kh_netlink_init(void)
{
	return genl_register_family(&kh_genl_family);
}

void kh_netlink_exit(void)
{
	genl_unregister_family(&kh_genl_family);
}
