// CElf: libelf (elfutils) for the BPF ELF loader. System library; found with pkg-config.
#include <libelf.h>
#include <gelf.h>
