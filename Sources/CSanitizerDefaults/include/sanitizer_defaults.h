/* Nothing to call: see sanitizer_defaults.c. */
#ifndef DBGBOX_SANITIZER_DEFAULTS_H
#define DBGBOX_SANITIZER_DEFAULTS_H
#endif
