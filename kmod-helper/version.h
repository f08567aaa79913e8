/* SPDX-License-Identifier: GPL-2.0 */
#ifndef KSMD_HELPER_VERSION_H
#define KSMD_HELPER_VERSION_H

#define KSMD_HELPER_VERSION "0.1.0"

#endif /* KSMD_HELPER_VERSION_H */
