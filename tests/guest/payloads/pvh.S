/*
 * PVH entry (Xen's hvm_start_info ABI): we start in 32-bit protected mode,
 * paging off, %ebx pointing at the start info. Switch to long mode with our
 * own GDT and page tables identity-mapping the first 1 GiB in 2 MiB pages,
 * then call payload_main(start_info).
 */
	.section .note.Xen, "a"
	.p2align 2
	.long 4			/* name size */
	.long 4			/* descriptor size */
	.long 18		/* XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz "Xen"
	.long pvh_start

	.section .text.entry, "ax"
	.code32
	.globl pvh_start
pvh_start:
	mov %ebx, %esi
	lgdt gdt_desc
	mov $boot_pml4, %eax
	mov %eax, %cr3
	mov %cr4, %eax
	or $0x20, %eax			/* PAE */
	mov %eax, %cr4
	mov $0xc0000080, %ecx		/* EFER */
	rdmsr
	or $0x100, %eax			/* LME */
	wrmsr
	mov %cr0, %eax
	or $0x80000001, %eax		/* PG, PE */
	mov %eax, %cr0
	ljmp $0x08, $long_mode

	.code64
long_mode:
	mov $0x10, %ax
	mov %ax, %ds
	mov %ax, %es
	mov %ax, %ss
	mov %ax, %fs
	mov %ax, %gs
	mov $stack_top, %rsp
	mov %rsi, %rdi
	call payload_main
1:	cli
	hlt
	jmp 1b

	.section .data
	.p2align 3
gdt:
	.quad 0
	.quad 0x00af9a000000ffff	/* 0x08: 64-bit code */
	.quad 0x00cf92000000ffff	/* 0x10: data */
gdt_end:
gdt_desc:
	.word gdt_end - gdt - 1
	.long gdt

	.p2align 12
	.globl boot_pml4, boot_pdpt, boot_pd
boot_pml4:
	.quad boot_pdpt + 3
	.fill 511, 8, 0
boot_pdpt:
	.quad boot_pd + 3
	.fill 511, 8, 0
boot_pd:
	.set i, 0
	.rept 512
	.quad (i << 21) | 0x83		/* present, writable, 2 MiB */
	.set i, i + 1
	.endr

	.section .bss
	.p2align 12
	.skip 16384
stack_top:
