/**
 * Go's time.Format with reference-time layouts ("2006-01-02T15:04:05Z07:00"), after Go's
 * time/format.go nextStdChunk. JavaScript dates carry milliseconds, so fractional seconds beyond
 * the third digit are zeros. "Local" is UTC: rendering must not depend on the host's zone.
 */

export interface Zone {
  /** Seconds east of UTC. */
  readonly offset: number;
  /** Abbreviation, e.g. "UTC", "EST", or "+0530" style when the zone has none. */
  readonly name: string;
}

export const UTC: Zone = { offset: 0, name: 'UTC' };

/** Formatters by zone name; bounded, since templates choose the names. */
const zoneFormats = new Map<string, Intl.DateTimeFormat | null>();
const MAX_ZONE_FORMATS = 100;

function zoneFormat(name: string): Intl.DateTimeFormat | null {
  let fmt = zoneFormats.get(name);
  if (fmt === undefined) {
    if (zoneFormats.size >= MAX_ZONE_FORMATS) zoneFormats.clear();
    try {
      fmt = new Intl.DateTimeFormat('en-US', {
        timeZone: name,
        hourCycle: 'h23',
        year: 'numeric',
        month: 'numeric',
        day: 'numeric',
        hour: 'numeric',
        minute: 'numeric',
        second: 'numeric',
        timeZoneName: 'short',
      });
    } catch {
      fmt = null; // Unknown zone: Sprig falls back to UTC.
    }
    zoneFormats.set(name, fmt);
  }
  return fmt;
}

/** The zone `name` (an IANA name, "UTC" or "Local") in effect at `t`; unknown names mean UTC. */
export function zoneAt(t: Date, name: string): Zone {
  if (name === '' || name === 'UTC' || name === 'Local') return UTC;
  const fmt = zoneFormat(name);
  if (!fmt) return UTC;
  const parts = new Map<string, string>(fmt.formatToParts(t).map((p) => [p.type, p.value]));
  const num = (type: string): number => Number(parts.get(type) ?? 0);
  const wall = Date.UTC(num('year'), num('month') - 1, num('day'), num('hour'), num('minute'), num('second'));
  const offset = Math.round((wall - (t.getTime() - t.getUTCMilliseconds())) / 1000);
  return { offset, name: abbreviation(parts.get('timeZoneName') ?? '', offset) };
}

/** Intl writes "GMT+5:30" where Go's tzdata has no abbreviation; Go writes "+0530". */
function abbreviation(intlName: string, offset: number): string {
  if (!/^(GMT|UTC)[+-]/.test(intlName)) return intlName;
  const abs = Math.abs(offset);
  const hh = String(Math.floor(abs / 3600)).padStart(2, '0');
  const mm = Math.floor((abs % 3600) / 60);
  return (offset < 0 ? '-' : '+') + hh + (mm ? String(mm).padStart(2, '0') : '');
}

const LONG_DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const LONG_MONTHS = [
  'January',
  'February',
  'March',
  'April',
  'May',
  'June',
  'July',
  'August',
  'September',
  'October',
  'November',
  'December',
];

type Std =
  | 'longMonth'
  | 'month'
  | 'numMonth'
  | 'zeroMonth'
  | 'longWeekDay'
  | 'weekDay'
  | 'day'
  | 'underDay'
  | 'zeroDay'
  | 'underYearDay'
  | 'zeroYearDay'
  | 'hour'
  | 'hour12'
  | 'zeroHour12'
  | 'minute'
  | 'zeroMinute'
  | 'second'
  | 'zeroSecond'
  | 'longYear'
  | 'year'
  | 'PM'
  | 'pm'
  | 'tz'
  | 'tzISO' // Z0700 family: "Z" at UTC
  | 'tzNum'; // -0700 family

interface Chunk {
  std: Std | 'frac';
  /** Length of the chunk in the layout. */
  len: number;
  /** Zone formats: with colon, with seconds, hours only. */
  colon?: boolean;
  seconds?: boolean;
  short?: boolean;
  /** Fractional seconds: digits, whether trailing zeros are dropped (.999), the separator. */
  digits?: number;
  trim?: boolean;
  sep?: string;
}

const ZONE_FORMATS: readonly [string, Omit<Chunk, 'std' | 'len'>][] = [
  ['070000', { seconds: true }],
  ['07:00:00', { colon: true, seconds: true }],
  ['0700', {}],
  ['07:00', { colon: true }],
  ['07', { short: true }],
];

function isDigitAt(s: string, i: number): boolean {
  const c = s.charCodeAt(i);
  return c >= 0x30 && c <= 0x39;
}

/** The standard chunk starting at `i`, or null if the character there is literal. */
function chunkAt(layout: string, i: number): Chunk | null {
  const at = (s: string): boolean => layout.startsWith(s, i);
  switch (layout[i]) {
    case 'J':
      if (at('January')) return { std: 'longMonth', len: 7 };
      if (at('Jan')) return { std: 'month', len: 3 };
      return null;
    case 'M':
      if (at('Monday')) return { std: 'longWeekDay', len: 6 };
      if (at('Mon')) return { std: 'weekDay', len: 3 };
      if (at('MST')) return { std: 'tz', len: 3 };
      return null;
    case '0': {
      const n = layout[i + 1];
      if (n >= '1' && n <= '6') {
        const stds: Std[] = ['zeroMonth', 'zeroDay', 'zeroHour12', 'zeroMinute', 'zeroSecond', 'year'];
        return { std: stds[Number(n) - 1], len: 2 };
      }
      if (at('002')) return { std: 'zeroYearDay', len: 3 };
      return null;
    }
    case '1':
      return at('15') ? { std: 'hour', len: 2 } : { std: 'numMonth', len: 1 };
    case '2':
      return at('2006') ? { std: 'longYear', len: 4 } : { std: 'day', len: 1 };
    case '_':
      if (at('_2')) return at('_2006') ? null : { std: 'underDay', len: 2 };
      return at('__2') ? { std: 'underYearDay', len: 3 } : null;
    case '3':
      return { std: 'hour12', len: 1 };
    case '4':
      return { std: 'minute', len: 1 };
    case '5':
      return { std: 'second', len: 1 };
    case 'P':
      return at('PM') ? { std: 'PM', len: 2 } : null;
    case 'p':
      return at('pm') ? { std: 'pm', len: 2 } : null;
    case '-':
    case 'Z': {
      const std: Std = layout[i] === 'Z' ? 'tzISO' : 'tzNum';
      for (const [text, opts] of ZONE_FORMATS) {
        if (layout.startsWith(text, i + 1)) return { std, len: text.length + 1, ...opts };
      }
      return null;
    }
    case '.':
    case ',': {
      const ch = layout[i + 1];
      if (ch !== '0' && ch !== '9') return null;
      let j = i + 1;
      while (layout[j] === ch) j++;
      // A run of digits is fractional seconds only if nothing numeric follows.
      if (isDigitAt(layout, j)) return null;
      return { std: 'frac', len: j - i, digits: j - i - 1, trim: ch === '9', sep: layout[i] };
    }
  }
  return null;
}

function pad(n: number, width: number, ch = '0'): string {
  const s = String(Math.abs(n)).padStart(width, ch);
  return n < 0 ? '-' + s : s;
}

function dayOfYear(t: Date): number {
  return Math.floor((t.getTime() - Date.UTC(t.getUTCFullYear(), 0, 1)) / 86400000) + 1;
}

function formatZone(c: Chunk, zone: Zone): string {
  if (c.std === 'tzISO' && zone.offset === 0) return 'Z';
  const abs = Math.abs(zone.offset);
  let out = (zone.offset < 0 ? '-' : '+') + pad(Math.floor(abs / 3600), 2);
  if (c.colon) out += ':';
  if (!c.short) out += pad(Math.floor((abs % 3600) / 60), 2);
  if (c.seconds) out += (c.colon ? ':' : '') + pad(abs % 60, 2);
  return out;
}

function formatChunk(c: Chunk, t: Date, zone: Zone): string {
  const hour = t.getUTCHours();
  switch (c.std) {
    case 'longMonth':
      return LONG_MONTHS[t.getUTCMonth()];
    case 'month':
      return LONG_MONTHS[t.getUTCMonth()].slice(0, 3);
    case 'numMonth':
      return String(t.getUTCMonth() + 1);
    case 'zeroMonth':
      return pad(t.getUTCMonth() + 1, 2);
    case 'longWeekDay':
      return LONG_DAYS[t.getUTCDay()];
    case 'weekDay':
      return LONG_DAYS[t.getUTCDay()].slice(0, 3);
    case 'day':
      return String(t.getUTCDate());
    case 'underDay':
      return pad(t.getUTCDate(), 2, ' ');
    case 'zeroDay':
      return pad(t.getUTCDate(), 2);
    case 'underYearDay':
      return pad(dayOfYear(t), 3, ' ');
    case 'zeroYearDay':
      return pad(dayOfYear(t), 3);
    case 'hour':
      return pad(hour, 2);
    case 'hour12':
      return String(hour % 12 === 0 ? 12 : hour % 12);
    case 'zeroHour12':
      return pad(hour % 12 === 0 ? 12 : hour % 12, 2);
    case 'minute':
      return String(t.getUTCMinutes());
    case 'zeroMinute':
      return pad(t.getUTCMinutes(), 2);
    case 'second':
      return String(t.getUTCSeconds());
    case 'zeroSecond':
      return pad(t.getUTCSeconds(), 2);
    case 'longYear':
      return pad(t.getUTCFullYear(), 4);
    case 'year':
      return pad(t.getUTCFullYear() % 100, 2);
    case 'PM':
      return hour >= 12 ? 'PM' : 'AM';
    case 'pm':
      return hour >= 12 ? 'pm' : 'am';
    case 'tz':
      return zone.name || formatZone({ std: 'tzNum', len: 0 }, zone);
    case 'tzISO':
    case 'tzNum':
      return formatZone(c, zone);
    case 'frac': {
      const digits = (String(t.getUTCMilliseconds()).padStart(3, '0') + '000000').slice(0, c.digits);
      if (!c.trim) return (c.sep ?? '.') + digits;
      const trimmed = digits.replace(/0+$/, '');
      return trimmed ? (c.sep ?? '.') + trimmed : '';
    }
  }
}

/** time.Time.In(zone).Format(layout). */
export function formatTime(t: Date, layout: string, zone: Zone = UTC): string {
  // Shift the instant so that the UTC getters read the zone's wall clock.
  const wall = new Date(t.getTime() + zone.offset * 1000);
  let out = '';
  let literal = 0;
  let i = 0;
  while (i < layout.length) {
    const c = chunkAt(layout, i);
    if (!c) {
      i++;
      continue;
    }
    out += layout.slice(literal, i) + formatChunk(c, wall, zone);
    i += c.len;
    literal = i;
  }
  return out + layout.slice(literal);
}

/** time.Time.String(), which `{{ now }}` and `%v` print. */
export function goTimeString(t: Date): string {
  return formatTime(t, '2006-01-02 15:04:05.999999999 -0700 MST');
}

/** How encoding/json writes a time.Time. */
export function rfc3339Nano(t: Date): string {
  return formatTime(t, '2006-01-02T15:04:05.999999999Z07:00');
}
