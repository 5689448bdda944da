/*
 * The Linux x86 boot protocol's "zero page" (Documentation/arch/x86/boot.rst
 * and zero-page.rst).  Only the fields domus fills or reads are named; the
 * rest is padding, with every named field's offset checked at compile time.
 */
#ifndef DOMUS_BOOTPARAM_H
#define DOMUS_BOOTPARAM_H

#include <stddef.h>
#include <stdint.h>

#define BP_E820_MAX 128
#define E820_RAM 1
#define E820_RESERVED 2
#define E820_ACPI 3

struct __attribute__((packed)) e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
};

struct __attribute__((packed)) setup_header {
	uint8_t setup_sects;      /* 0x1f1 */
	uint16_t root_flags;
	uint32_t syssize;         /* 0x1f4, in 16-byte paragraphs */
	uint16_t ram_size;
	uint16_t vid_mode;
	uint16_t root_dev;
	uint16_t boot_flag;       /* 0x1fe: 0xAA55 */
	uint16_t jump;            /* 0x200 */
	uint32_t header;          /* 0x202: "HdrS" */
	uint16_t version;         /* 0x206 */
	uint32_t realmode_swtch;
	uint16_t start_sys_seg;
	uint16_t kernel_version;
	uint8_t type_of_loader;   /* 0x210 */
	uint8_t loadflags;        /* 0x211 */
	uint16_t setup_move_size;
	uint32_t code32_start;    /* 0x214 */
	uint32_t ramdisk_image;   /* 0x218 */
	uint32_t ramdisk_size;    /* 0x21c */
	uint32_t bootsect_kludge;
	uint16_t heap_end_ptr;    /* 0x224 */
	uint8_t ext_loader_ver;
	uint8_t ext_loader_type;
	uint32_t cmd_line_ptr;    /* 0x228 */
	uint32_t initrd_addr_max; /* 0x22c */
	uint32_t kernel_alignment;
	uint8_t relocatable_kernel;
	uint8_t min_alignment;
	uint16_t xloadflags;      /* 0x236 */
	uint32_t cmdline_size;    /* 0x238 */
	uint32_t hardware_subarch;
	uint64_t hardware_subarch_data;
	uint32_t payload_offset;  /* 0x248 */
	uint32_t payload_length;
	uint64_t setup_data;
	uint64_t pref_address;    /* 0x258 */
	uint32_t init_size;       /* 0x260 */
	uint32_t handover_offset;
	uint32_t kernel_info_offset;
};

struct __attribute__((packed)) boot_params {
	uint8_t pad0[0x70];
	uint64_t acpi_rsdp_addr;  /* 0x070 */
	uint8_t pad1[0x1e8 - 0x78];
	uint8_t e820_entries;     /* 0x1e8 */
	uint8_t pad2[0x1f1 - 0x1e9];
	struct setup_header hdr;  /* 0x1f1 */
	uint8_t pad3[0x2d0 - 0x1f1 - sizeof(struct setup_header)];
	struct e820_entry e820_table[BP_E820_MAX]; /* 0x2d0 */
	uint8_t pad4[0x1000 - 0x2d0 - BP_E820_MAX * sizeof(struct e820_entry)];
};

#define HDRS_MAGIC 0x53726448 /* "HdrS" */
#define LOADFLAG_LOADED_HIGH 0x01
#define LOADFLAG_CAN_USE_HEAP 0x80
#define XLF_KERNEL_64 0x01

_Static_assert(sizeof(struct boot_params) == 4096, "zero page is one page");
_Static_assert(offsetof(struct boot_params, acpi_rsdp_addr) == 0x070, "acpi_rsdp_addr");
_Static_assert(offsetof(struct boot_params, e820_entries) == 0x1e8, "e820_entries");
_Static_assert(offsetof(struct boot_params, hdr) == 0x1f1, "hdr");
_Static_assert(offsetof(struct boot_params, hdr.header) == 0x202, "header");
_Static_assert(offsetof(struct boot_params, hdr.type_of_loader) == 0x210, "type_of_loader");
_Static_assert(offsetof(struct boot_params, hdr.ramdisk_image) == 0x218, "ramdisk_image");
_Static_assert(offsetof(struct boot_params, hdr.cmd_line_ptr) == 0x228, "cmd_line_ptr");
_Static_assert(offsetof(struct boot_params, hdr.xloadflags) == 0x236, "xloadflags");
_Static_assert(offsetof(struct boot_params, hdr.payload_offset) == 0x248, "payload_offset");
_Static_assert(offsetof(struct boot_params, hdr.init_size) == 0x260, "init_size");
_Static_assert(offsetof(struct boot_params, e820_table) == 0x2d0, "e820_table");

/* PVH: Xen's hvm_start_info (xen/include/public/arch-x86/hvm/start_info.h), version 1. */
#define HVM_START_MAGIC 0x336ec578
#define XEN_ELFNOTE_PHYS32_ENTRY 18

struct hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
	uint64_t memmap_paddr;
	uint32_t memmap_entries;
	uint32_t reserved;
};

struct hvm_modlist_entry {
	uint64_t paddr;
	uint64_t size;
	uint64_t cmdline_paddr;
	uint64_t reserved;
};

struct hvm_memmap_table_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
	uint32_t reserved;
};

_Static_assert(sizeof(struct hvm_start_info) == 56, "hvm_start_info");
_Static_assert(sizeof(struct hvm_memmap_table_entry) == 24, "hvm_memmap_table_entry");

#endif
