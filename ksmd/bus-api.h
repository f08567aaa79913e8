/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The names of the D-Bus API, org.ksmd.Manager1 (man/org.ksmd.Manager1.5.scd):
 * what the daemon (manager-bus.c) serves and ksmctl calls.
 */

#define BUS_INTERFACE "org.ksmd.Manager1"
#define BUS_OBJECT_PATH "/org/ksmd/Manager1"
#define BUS_WELL_KNOWN_NAME "org.ksmd.Manager1"

#define BUS_ERROR_ACCESS_DENIED "org.ksmd.Error.AccessDenied"
#define BUS_ERROR_NO_SUCH_PROCESS "org.ksmd.Error.NoSuchProcess"
#define BUS_ERROR_NO_SUCH_REGION "org.ksmd.Error.NoSuchRegion"
#define BUS_ERROR_LIMIT_EXCEEDED "org.ksmd.Error.LimitExceeded"
#define BUS_ERROR_ALREADY_REGISTERED "org.ksmd.Error.AlreadyRegistered"
#define BUS_ERROR_NOT_SUPPORTED "org.ksmd.Error.NotSupported"
#define BUS_ERROR_INVALID_CONFIG "org.ksmd.Error.InvalidConfig"
