/**
 * Boot entries for the generations, rendered from the same data (pure functions). rEFInd and
 * GRUB read btrfs and follow the `current` symlinks themselves, so their entries are static
 * (`/current/N/@`, the wiki's approach) and never change on a switch. systemd-boot only reads
 * the ESP: its entries name each generation's kernel copied there, and the trial generation's
 * entry carries the boot counter (`+N`, blessed by `systemd-bless-boot`).
 */
export interface BootEntryInput {
  title: string;
  /** `root=UUID=...` of the btrfs volume. */
  rootUuid: string;
  /** rEFInd's `volume` (the partition label the wiki uses, e.g. ROOT). */
  volumeLabel: string;
  /** Kernel and initramfs inside a generation's root. */
  kernel: string;
  initrd: string;
  /** Extra kernel options (the wiki: `resume=UUID=... quiet splash`). */
  options: string;
  /** Slots of the links directories: 0 and the fallbacks. */
  slots: number;
}

const rootOptions = (e: BootEntryInput, subvol: string) => `root=UUID=${e.rootUuid} rootfstype=btrfs rootflags=subvol=${subvol} ro${e.options ? ` ${e.options}` : ''}`;

/** The wiki's rEFInd menuentry: `/current/0/@` with submenu entries for the fallbacks. */
export function renderRefind(e: BootEntryInput): string {
  const lines = [`menuentry "${e.title}" {`, '    icon /EFI/refind/icons/os_linux.png', `    volume "${e.volumeLabel}"`];
  lines.push(`    loader /current/0/@${e.kernel}`, `    initrd /current/0/@${e.initrd}`, `    options "${rootOptions(e, '/current/0/@')}"`);
  for (let i = 1; i < e.slots; i++) {
    lines.push('', `    submenuentry "Boot fallback ${i}" {`);
    lines.push(`        loader /current/${i}/@${e.kernel}`, `        initrd /current/${i}/@${e.initrd}`, `        options "${rootOptions(e, `/current/${i}/@`)}"`, '    }');
  }
  lines.push('}');
  return lines.join('\n') + '\n';
}

/** A GRUB snippet (for /etc/grub.d/ or grub.cfg): one menuentry per slot, GRUB's btrfs follows the links. */
export function renderGrub(e: BootEntryInput): string {
  const out: string[] = [];
  for (let i = 0; i < e.slots; i++) {
    const name = i === 0 ? e.title : `${e.title} (fallback ${i})`;
    out.push(
      `menuentry '${name.replace(/'/g, "'\\''")}' --id ibex-slot-${i} {`,
      '    insmod btrfs',
      `    search --no-floppy --fs-uuid --set=root ${e.rootUuid}`,
      `    linux /current/${i}/@${e.kernel} ${rootOptions(e, `/current/${i}/@`)}`,
      `    initrd /current/${i}/@${e.initrd}`,
      '}',
    );
  }
  return out.join('\n') + '\n';
}

export interface SystemdBootEntry {
  /** File name under loader/entries/. */
  file: string;
  text: string;
}

/**
 * systemd-boot entries, one per generation in slot order. `trial` (with `bootsLeft`) gets the
 * boot-counting suffix `+N`; the kernel and initramfs must be copied to `/ibex/<gen>/` on the ESP.
 */
export function renderSystemdBoot(e: BootEntryInput, slots: readonly string[], trial?: { id: string; bootsLeft: number }): SystemdBootEntry[] {
  const base = (p: string) => p.split('/').pop()!;
  const seen = new Set<string>();
  const out: SystemdBootEntry[] = [];
  slots.forEach((gen, i) => {
    if (seen.has(gen)) return;
    seen.add(gen);
    const counter = trial?.id === gen ? `+${trial.bootsLeft}` : '';
    // Entries sort by file name, newest first via the slot number.
    const file = `ibex-${i}-${gen}${counter}.conf`;
    const text = [
      `title ${e.title}${i === 0 ? '' : ` (fallback ${i})`}`,
      `version ${gen}`,
      `linux /ibex/${gen}/${base(e.kernel)}`,
      `initrd /ibex/${gen}/${base(e.initrd)}`,
      `options ${rootOptions(e, `/snapshots/${gen}/@`)}`,
    ].join('\n');
    out.push({ file, text: text + '\n' });
  });
  return out;
}
