// SPDX-License-Identifier: GPL-2.0
/*
 * A module whose only job is to print a kernel WARNING on load, so that the
 * VM bench can prove it fails such a run.
 */
#include <linux/bug.h>
#include <linux/module.h>

static int __init vmtest_warn_init(void)
{
	WARN(1, "ksmd VM bench self-test: deliberate warning\n");
	return 0;
}

static void __exit vmtest_warn_exit(void)
{
}

module_init(vmtest_warn_init);
module_exit(vmtest_warn_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("ksmd VM bench self-test: warns on load");
