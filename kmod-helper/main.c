// SPDX-License-Identifier: GPL-2.0
/*
 * ksmd_helper: the kernel side of ksmd, a userspace memory deduplicator.
 *
 * Load order: resolve and check the kernel functions the module needs
 * (refusing to load with one log line if any is missing or uncallable),
 * set up the pool the shared pages come from, then register the netlink
 * family, which is the only way in, and start the collector of unmapped
 * shared pages (which also returns the pool's idle blocks). Unload runs in
 * reverse and then drops the registry and the pool. Unloading with merged
 * pages still mapped is safe: the module installs no callbacks into the mm,
 * and each page lives on through its mappings' references.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/workqueue.h>
#include <net/genetlink.h>
#include <linux/ksmd_helper.h>

#include "netlink.h"
#include "pages.h"
#include "pool.h"
#include "symbols.h"
#include "version.h"

/* How often pages no page table maps any more are freed. */
#define KH_GC_INTERVAL (5 * HZ)

static void kh_gc_work_fn(struct work_struct *work);
static DECLARE_DELAYED_WORK(kh_gc_work, kh_gc_work_fn);

static void kh_gc_work_fn(struct work_struct *work)
{
	kh_pages_gc();
	kh_pool_trim();
	schedule_delayed_work(&kh_gc_work, KH_GC_INTERVAL);
}

static int __init kh_init(void)
{
	int r;

	r = kh_symbols_init();
	if (r < 0)
		return r;
	r = kh_pool_init();
	if (r < 0)
		return r;

	r = kh_netlink_init();
	if (r < 0) {
		pr_err("cannot register the generic netlink family: %d\n", r);
		kh_pool_exit();
		return r;
	}

	schedule_delayed_work(&kh_gc_work, KH_GC_INTERVAL);
	return 0;
}

static void __exit kh_exit(void)
{
	kh_netlink_exit();
	cancel_delayed_work_sync(&kh_gc_work);
	kh_pages_exit();
	kh_pool_exit();
}

module_init(kh_init);
module_exit(kh_exit);
MODULE_LICENSE("GPL");
MODULE_AUTHOR("The ksmd authors");
MODULE_DESCRIPTION("Verified page merging for the ksmd memory deduplicator");
MODULE_VERSION(KSMD_HELPER_VERSION);
MODULE_ALIAS_GENL_FAMILY(KSMD_HELPER_GENL_NAME);
