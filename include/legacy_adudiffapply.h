/*
 * legacy_adudiffapply.h - compatibility name for the legacy apply API.
 *
 * Microsoft's delta processor ships the agent API under this header name; code written against
 * it compiles unchanged with this library. All declarations live in adudiffapi.h (generated).
 */
#ifndef LEGACY_ADUDIFFAPPLY_H
#define LEGACY_ADUDIFFAPPLY_H

#include "adudiffapi.h"

#endif /* LEGACY_ADUDIFFAPPLY_H */
