/*
 * Start-up code for an application processor. A payload copies the bytes
 * from ap_trampoline to ap_trampoline_end to AP_TRAMPOLINE_ADDR (a page
 * below 1 MiB: a start-up IPI names its page, and the AP begins there in
 * real mode, CS = page << 8, IP = 0), sets ap_stack_top and sends INIT and
 * SIPI. The AP goes straight from real mode to long mode on the BSP's page
 * tables (PAE, CR3, EFER.LME, then PE and PG together), far-jumps to 64-bit
 * code in the image and calls ap_main(), which must not return.
 */
#define AP_TRAMPOLINE_ADDR 0x10000

	.section .rodata
	.code16
	.globl ap_trampoline, ap_trampoline_end
ap_trampoline:
	cli
	cld
	mov %cs, %ax
	mov %ax, %ds			/* the trampoline's data, relative to its page */
	mov %cr4, %eax
	or $0x20, %eax			/* PAE */
	mov %eax, %cr4
	mov ap_cr3 - ap_trampoline, %eax
	mov %eax, %cr3
	mov $0xc0000080, %ecx		/* EFER */
	rdmsr
	or $0x100, %eax			/* LME */
	wrmsr
	lgdtl ap_gdt_desc - ap_trampoline
	mov %cr0, %eax
	or $0x80000001, %eax		/* PG, PE */
	mov %eax, %cr0
	ljmpl *(ap_far - ap_trampoline)

	.p2align 3
ap_gdt:
	.quad 0
	.quad 0x00af9a000000ffff	/* 0x08: 64-bit code */
	.quad 0x00cf92000000ffff	/* 0x10: data */
ap_gdt_end:
ap_gdt_desc:
	.word ap_gdt_end - ap_gdt - 1
	.long AP_TRAMPOLINE_ADDR + ap_gdt - ap_trampoline
ap_cr3:
	.long boot_pml4
ap_far:
	.long ap_long_mode
	.word 0x08
ap_trampoline_end:

	.text
	.code64
ap_long_mode:
	mov $0x10, %ax
	mov %ax, %ds
	mov %ax, %es
	mov %ax, %ss
	mov %ax, %fs
	mov %ax, %gs
	mov ap_stack_top(%rip), %rsp
	call ap_main
1:	cli
	hlt
	jmp 1b
