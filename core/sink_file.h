/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * File sink (--kong-config-out): writes each revision atomically as a Kong declarative file
 * (JSON, or YAML when the name ends in .yaml/.yml) for Kong's declarative_config, so an edge
 * install needs no Admin API. The write runs in the thread pool; latest revision wins.
 */
#include <uv.h>

#include "sink.h"

int sink_file_new(uv_loop_t *loop, const char *path, SinkHost *host, Sink **ret);
