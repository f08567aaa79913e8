/* SPDX-License-Identifier: GPL-2.0 */
/* The generic netlink family KSMD_HELPER_GENL_NAME. */
#ifndef KSMD_HELPER_NETLINK_H
#define KSMD_HELPER_NETLINK_H

int kh_netlink_init(void);
void kh_netlink_exit(void);

#endif /* KSMD_HELPER_NETLINK_H */
