/*
 * Linear page tables, the 2004 roadmap's "page directories mapping one
 * another", now the guest's own business under NPT/EPT: a PML4 slot that
 * points at the PML4 itself makes every paging structure visible at a
 * computable virtual address. We build such a hierarchy, read entries
 * through the linear mapping and compare them with the real tables, change
 * entries through it and check the real tables and translations follow, and
 * map one page directory from another.
 */
#include "payload.h"

#define PTE_P 0x1ULL
#define PTE_RW 0x2ULL
#define SLOT 510ULL /* the recursive PML4 slot */
#define TEST_VA 0x40000000ULL  /* 4 KiB pages through pd2 -> pt2 */
#define WINDOW_VA 0x7fe00000ULL /* pd2[511] -> pd2: pd2's targets appear as pages */
#define NFRAMES 8

extern uint64_t boot_pd[512];

static uint64_t pml4[512] __attribute__((aligned(4096)));
static uint64_t pdpt[512] __attribute__((aligned(4096)));
static uint64_t pd2[512] __attribute__((aligned(4096)));
static uint64_t pt2[512] __attribute__((aligned(4096)));
static uint8_t frames[NFRAMES][4096] __attribute__((aligned(4096)));

static unsigned checks, failures;

/* The CPU sets accessed and dirty bits as it walks; they are not what is compared. */
#define AD_BITS 0x60ULL

static void check(int ok, const char *what, uint64_t got, uint64_t want)
{
	checks++;
	if (ok)
		return;
	failures++;
	putstr("linear-page-tables: FAIL ");
	putstr(what);
	putstr(" got ");
	puthex(got);
	putstr(" want ");
	puthex(want);
	putstr("\n");
}

static int same(uint64_t a, uint64_t b)
{
	return (a & ~AD_BITS) == (b & ~AD_BITS);
}

/* Tables are read through volatile pointers: the CPU updates them behind the compiler. */
static uint64_t real(const uint64_t *table, unsigned i)
{
	return ((const volatile uint64_t *)table)[i];
}

static uint64_t canonical(uint64_t va)
{
	return (va & (1ULL << 47)) ? va | 0xffff000000000000ULL : va;
}

/* The virtual address at which the linear mapping shows the table reached by indices a, b, c. */
static uint64_t linear(uint64_t a, uint64_t b, uint64_t c, uint64_t d)
{
	return canonical((a << 39) | (b << 30) | (c << 21) | (d << 12));
}

static unsigned index_of(uint64_t va, int level)
{
	return (unsigned)((va >> (12 + 9 * (level - 1))) & 511);
}

static uint64_t read_linear(uint64_t va)
{
	return *(volatile uint64_t *)(uintptr_t)va;
}

static void write_linear(uint64_t va, uint64_t v)
{
	*(volatile uint64_t *)(uintptr_t)va = v;
}

static void invlpg(uint64_t va)
{
	__asm__ volatile("invlpg (%0)" : : "r"(va) : "memory");
}

static uint64_t pa(const void *p)
{
	return (uint64_t)(uintptr_t)p; /* the first GiB is identity mapped */
}

/* Entries of every level for va, through the linear mapping, against the real tables. */
static void check_walk(uint64_t va, int has_pte)
{
	uint64_t l4 = index_of(va, 4), l3 = index_of(va, 3), l2 = index_of(va, 2), l1 = index_of(va, 1);
	const uint64_t *real_pd = l3 == 0 ? boot_pd : pd2;

	check(same(read_linear(linear(SLOT, SLOT, SLOT, SLOT) + 8 * l4), real(pml4, l4)), "pml4e",
	      read_linear(linear(SLOT, SLOT, SLOT, SLOT) + 8 * l4), real(pml4, l4));
	check(same(read_linear(linear(SLOT, SLOT, SLOT, l4) + 8 * l3), real(pdpt, l3)), "pdpte",
	      read_linear(linear(SLOT, SLOT, SLOT, l4) + 8 * l3), real(pdpt, l3));
	check(same(read_linear(linear(SLOT, SLOT, l4, l3) + 8 * l2), real(real_pd, l2)), "pde",
	      read_linear(linear(SLOT, SLOT, l4, l3) + 8 * l2), real(real_pd, l2));
	if (has_pte)
		check(same(read_linear(linear(SLOT, l4, l3, l2) + 8 * l1), real(pt2, l1)), "pte",
	      read_linear(linear(SLOT, l4, l3, l2) + 8 * l1), real(pt2, l1));
}

void payload_main(const struct hvm_start_info *si)
{
	uint64_t va, pte_va, entry;

	for (unsigned i = 0; i < NFRAMES; i++)
		for (unsigned j = 0; j < 4096; j++)
			frames[i][j] = (uint8_t)(0xa0 + i);
	pml4[0] = pa(pdpt) | PTE_P | PTE_RW;
	pml4[SLOT] = pa(pml4) | PTE_P | PTE_RW;
	pdpt[0] = pa(boot_pd) | PTE_P | PTE_RW;
	pdpt[1] = pa(pd2) | PTE_P | PTE_RW;
	pd2[0] = pa(pt2) | PTE_P | PTE_RW;
	pd2[511] = pa(pd2) | PTE_P | PTE_RW; /* a directory mapping a directory */
	for (unsigned i = 0; i < NFRAMES - 1; i++)
		pt2[i] = pa(frames[i]) | PTE_P | PTE_RW;
	__asm__ volatile("mov %0, %%cr3" : : "r"(pa(pml4)) : "memory");

	/* The recursive slot maps the PML4 onto itself. */
	check(same(read_linear(linear(SLOT, SLOT, SLOT, SLOT) + 8 * SLOT), real(pml4, SLOT)), "recursive slot",
	      read_linear(linear(SLOT, SLOT, SLOT, SLOT) + 8 * SLOT), real(pml4, SLOT));
	/* Walks of 4 KiB mappings and of identity-mapped 2 MiB pages. */
	for (unsigned i = 0; i < NFRAMES - 1; i++) {
		check_walk(TEST_VA + 4096ULL * i, 1);
		check(*(volatile uint8_t *)(uintptr_t)(TEST_VA + 4096ULL * i + 17) == 0xa0 + i,
		      "translation", *(volatile uint8_t *)(uintptr_t)(TEST_VA + 4096ULL * i + 17),
		      0xa0 + i);
	}
	for (va = 0; va < 0x40000000ULL; va += 0x2000000ULL)
		check_walk(va, 0);

	/* A new mapping written through the linear mapping reaches the real table and translates. */
	va = TEST_VA + 4096ULL * (NFRAMES - 1);
	pte_va = linear(SLOT, index_of(va, 4), index_of(va, 3), index_of(va, 2)) + 8 * index_of(va, 1);
	entry = pa(frames[NFRAMES - 1]) | PTE_P | PTE_RW;
	write_linear(pte_va, entry);
	invlpg(va);
	check(same(real(pt2, NFRAMES - 1), entry), "new pte in the real table", real(pt2, NFRAMES - 1), entry);
	*(volatile uint32_t *)(uintptr_t)va = 0x600dcafe;
	check(*(volatile uint32_t *)frames[NFRAMES - 1] == 0x600dcafe, "write through new mapping",
	      *(volatile uint32_t *)frames[NFRAMES - 1], 0x600dcafe);

	/* Changing an entry through the linear mapping redirects the translation. */
	va = TEST_VA + 4096;
	pte_va = linear(SLOT, index_of(va, 4), index_of(va, 3), index_of(va, 2)) + 8 * index_of(va, 1);
	write_linear(pte_va, pa(frames[2]) | PTE_P | PTE_RW);
	invlpg(va);
	check(same(real(pt2, 1), pa(frames[2]) | PTE_P | PTE_RW), "changed pte", real(pt2, 1),
	      pa(frames[2]) | PTE_P | PTE_RW);
	check(*(volatile uint8_t *)(uintptr_t)va == 0xa2, "redirected translation",
	      *(volatile uint8_t *)(uintptr_t)va, 0xa2);

	/* Through pd2[511] -> pd2, page 0 of the window is pt2 and page 511 is pd2 itself. */
	for (unsigned k = 0; k < NFRAMES; k++)
		check(same(read_linear(WINDOW_VA + 8 * k), real(pt2, k)), "directory-mapped table",
	      read_linear(WINDOW_VA + 8 * k), real(pt2, k));
	check(same(read_linear(WINDOW_VA + 511 * 4096ULL), real(pd2, 0)), "directory maps itself",
	      read_linear(WINDOW_VA + 511 * 4096ULL), real(pd2, 0));

	putstr("linear-page-tables: ");
	putdec(checks);
	putstr(" checks\n");
	putstr(failures ? "linear-page-tables: FAIL\n" : "linear-page-tables: PASS\n");
	poweroff();
}
