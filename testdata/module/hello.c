// SPDX-License-Identifier: GPL-2.0
/*
 * lkbuild_hello: the out-of-tree module of lkbuild's end-to-end tests. It is
 * built against a kernel image's kernel-dev.tar and loaded in the booted
 * kernel; the lines it prints prove both steps worked.
 */
#include <linux/init.h>
#include <linux/module.h>
#include <linux/printk.h>

static int __init lkbuild_hello_init(void)
{
	pr_notice("lkbuild-e2e: out-of-tree module loaded\n");
	return 0;
}

static void __exit lkbuild_hello_exit(void)
{
	pr_notice("lkbuild-e2e: out-of-tree module unloaded\n");
}

module_init(lkbuild_hello_init);
module_exit(lkbuild_hello_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("lkbuild end-to-end test module");
