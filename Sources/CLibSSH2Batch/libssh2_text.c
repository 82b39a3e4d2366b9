/* Where libssh2's code lies (see libssh2_text.h). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "libssh2_text.h"

uintptr_t dbgbox_libssh2_text_start;
uintptr_t dbgbox_libssh2_text_end;
static int wanted;
static pthread_once_t locate_once = PTHREAD_ONCE_INIT;

static int find_text(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    uintptr_t target = (uintptr_t)data;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X)) continue;
        uintptr_t start = info->dlpi_addr + ph->p_vaddr;
        uintptr_t end = start + ph->p_memsz;
        if (target >= start && target < end) {
            dbgbox_libssh2_text_start = start;
            dbgbox_libssh2_text_end = end;
            return 1;
        }
    }
    return 0;
}

static void locate(void) {
    void *libssh2_function = dlsym(RTLD_DEFAULT, "libssh2_session_init_ex");
    if (libssh2_function) dl_iterate_phdr(find_text, libssh2_function);
    const char *setting = getenv("DBGBOX_LIBSSH2_BATCH");
    wanted = !(setting && strcmp(setting, "0") == 0);
}

int dbgbox_libssh2_locate(void) {
    pthread_once(&locate_once, locate);
    return wanted && dbgbox_libssh2_text_end > dbgbox_libssh2_text_start;
}
