"""Windows time-zone names → IANA zones, for calendars written by Outlook and Exchange.

Why this exists: Outlook, Exchange and Microsoft Graph name zones the Windows way
(``TZID:W. Europe Standard Time``, ``Pacific Standard Time``) and older Outlook versions by the
display name (``(UTC+01:00) Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna``). The embedded
``VTIMEZONE`` they send describes only the current rules, so recurring series that reach back
across a rule change come out wrong unless the zone is looked up in the IANA database.

The table follows the Unicode CLDR ``windowsZones`` mapping (the ``001`` "golden" zone of each
Windows zone), written out here by hand, plus a few names older Windows versions used.
:func:`windows_to_iana` is pure: it only reads the two tables below.
"""

from __future__ import annotations

import re

__all__ = ["WINDOWS_ZONES", "windows_to_iana"]

#: Windows zone id → IANA zone (CLDR windowsZones, territory 001).
WINDOWS_ZONES: dict[str, str] = {
    "Dateline Standard Time": "Etc/GMT+12",
    "UTC-11": "Etc/GMT+11",
    "Aleutian Standard Time": "America/Adak",
    "Hawaiian Standard Time": "Pacific/Honolulu",
    "Marquesas Standard Time": "Pacific/Marquesas",
    "Alaskan Standard Time": "America/Anchorage",
    "UTC-09": "Etc/GMT+9",
    "Pacific Standard Time (Mexico)": "America/Tijuana",
    "UTC-08": "Etc/GMT+8",
    "Pacific Standard Time": "America/Los_Angeles",
    "US Mountain Standard Time": "America/Phoenix",
    "Mountain Standard Time (Mexico)": "America/Mazatlan",
    "Mountain Standard Time": "America/Denver",
    "Yukon Standard Time": "America/Whitehorse",
    "Central America Standard Time": "America/Guatemala",
    "Central Standard Time": "America/Chicago",
    "Easter Island Standard Time": "Pacific/Easter",
    "Central Standard Time (Mexico)": "America/Mexico_City",
    "Canada Central Standard Time": "America/Regina",
    "SA Pacific Standard Time": "America/Bogota",
    "Eastern Standard Time (Mexico)": "America/Cancun",
    "Eastern Standard Time": "America/New_York",
    "Haiti Standard Time": "America/Port-au-Prince",
    "Cuba Standard Time": "America/Havana",
    "US Eastern Standard Time": "America/Indiana/Indianapolis",
    "Turks And Caicos Standard Time": "America/Grand_Turk",
    "Paraguay Standard Time": "America/Asuncion",
    "Atlantic Standard Time": "America/Halifax",
    "Venezuela Standard Time": "America/Caracas",
    "Central Brazilian Standard Time": "America/Cuiaba",
    "SA Western Standard Time": "America/La_Paz",
    "Pacific SA Standard Time": "America/Santiago",
    "Newfoundland Standard Time": "America/St_Johns",
    "Tocantins Standard Time": "America/Araguaina",
    "E. South America Standard Time": "America/Sao_Paulo",
    "SA Eastern Standard Time": "America/Cayenne",
    "Argentina Standard Time": "America/Argentina/Buenos_Aires",
    "Greenland Standard Time": "America/Nuuk",
    "Montevideo Standard Time": "America/Montevideo",
    "Magallanes Standard Time": "America/Punta_Arenas",
    "Saint Pierre Standard Time": "America/Miquelon",
    "Bahia Standard Time": "America/Bahia",
    "UTC-02": "Etc/GMT+2",
    "Azores Standard Time": "Atlantic/Azores",
    "Cape Verde Standard Time": "Atlantic/Cape_Verde",
    "UTC": "Etc/UTC",
    "GMT Standard Time": "Europe/London",
    "Greenwich Standard Time": "Atlantic/Reykjavik",
    "Sao Tome Standard Time": "Africa/Sao_Tome",
    "Morocco Standard Time": "Africa/Casablanca",
    "W. Europe Standard Time": "Europe/Berlin",
    "Central Europe Standard Time": "Europe/Budapest",
    "Romance Standard Time": "Europe/Paris",
    "Central European Standard Time": "Europe/Warsaw",
    "W. Central Africa Standard Time": "Africa/Lagos",
    "Jordan Standard Time": "Asia/Amman",
    "GTB Standard Time": "Europe/Bucharest",
    "Middle East Standard Time": "Asia/Beirut",
    "Egypt Standard Time": "Africa/Cairo",
    "E. Europe Standard Time": "Europe/Chisinau",
    "Syria Standard Time": "Asia/Damascus",
    "West Bank Standard Time": "Asia/Hebron",
    "South Africa Standard Time": "Africa/Johannesburg",
    "FLE Standard Time": "Europe/Kyiv",
    "Israel Standard Time": "Asia/Jerusalem",
    "South Sudan Standard Time": "Africa/Juba",
    "Kaliningrad Standard Time": "Europe/Kaliningrad",
    "Sudan Standard Time": "Africa/Khartoum",
    "Libya Standard Time": "Africa/Tripoli",
    "Namibia Standard Time": "Africa/Windhoek",
    "Arabic Standard Time": "Asia/Baghdad",
    "Turkey Standard Time": "Europe/Istanbul",
    "Arab Standard Time": "Asia/Riyadh",
    "Belarus Standard Time": "Europe/Minsk",
    "Russian Standard Time": "Europe/Moscow",
    "E. Africa Standard Time": "Africa/Nairobi",
    "Volgograd Standard Time": "Europe/Volgograd",
    "Iran Standard Time": "Asia/Tehran",
    "Arabian Standard Time": "Asia/Dubai",
    "Astrakhan Standard Time": "Europe/Astrakhan",
    "Azerbaijan Standard Time": "Asia/Baku",
    "Russia Time Zone 3": "Europe/Samara",
    "Mauritius Standard Time": "Indian/Mauritius",
    "Saratov Standard Time": "Europe/Saratov",
    "Georgian Standard Time": "Asia/Tbilisi",
    "Caucasus Standard Time": "Asia/Yerevan",
    "Afghanistan Standard Time": "Asia/Kabul",
    "West Asia Standard Time": "Asia/Tashkent",
    "Qyzylorda Standard Time": "Asia/Qyzylorda",
    "Ekaterinburg Standard Time": "Asia/Yekaterinburg",
    "Pakistan Standard Time": "Asia/Karachi",
    "India Standard Time": "Asia/Kolkata",
    "Sri Lanka Standard Time": "Asia/Colombo",
    "Nepal Standard Time": "Asia/Kathmandu",
    "Central Asia Standard Time": "Asia/Bishkek",
    "Bangladesh Standard Time": "Asia/Dhaka",
    "Omsk Standard Time": "Asia/Omsk",
    "Myanmar Standard Time": "Asia/Yangon",
    "SE Asia Standard Time": "Asia/Bangkok",
    "Altai Standard Time": "Asia/Barnaul",
    "W. Mongolia Standard Time": "Asia/Hovd",
    "North Asia Standard Time": "Asia/Krasnoyarsk",
    "N. Central Asia Standard Time": "Asia/Novosibirsk",
    "Tomsk Standard Time": "Asia/Tomsk",
    "China Standard Time": "Asia/Shanghai",
    "North Asia East Standard Time": "Asia/Irkutsk",
    "Singapore Standard Time": "Asia/Singapore",
    "W. Australia Standard Time": "Australia/Perth",
    "Taipei Standard Time": "Asia/Taipei",
    "Ulaanbaatar Standard Time": "Asia/Ulaanbaatar",
    "Aus Central W. Standard Time": "Australia/Eucla",
    "Transbaikal Standard Time": "Asia/Chita",
    "Tokyo Standard Time": "Asia/Tokyo",
    "North Korea Standard Time": "Asia/Pyongyang",
    "Korea Standard Time": "Asia/Seoul",
    "Yakutsk Standard Time": "Asia/Yakutsk",
    "Cen. Australia Standard Time": "Australia/Adelaide",
    "AUS Central Standard Time": "Australia/Darwin",
    "E. Australia Standard Time": "Australia/Brisbane",
    "AUS Eastern Standard Time": "Australia/Sydney",
    "West Pacific Standard Time": "Pacific/Port_Moresby",
    "Tasmania Standard Time": "Australia/Hobart",
    "Vladivostok Standard Time": "Asia/Vladivostok",
    "Lord Howe Standard Time": "Australia/Lord_Howe",
    "Bougainville Standard Time": "Pacific/Bougainville",
    "Russia Time Zone 10": "Asia/Srednekolymsk",
    "Magadan Standard Time": "Asia/Magadan",
    "Norfolk Standard Time": "Pacific/Norfolk",
    "Sakhalin Standard Time": "Asia/Sakhalin",
    "Central Pacific Standard Time": "Pacific/Guadalcanal",
    "Russia Time Zone 11": "Asia/Kamchatka",
    "New Zealand Standard Time": "Pacific/Auckland",
    "UTC+12": "Etc/GMT-12",
    "Fiji Standard Time": "Pacific/Fiji",
    "Chatham Islands Standard Time": "Pacific/Chatham",
    "UTC+13": "Etc/GMT-13",
    "Tonga Standard Time": "Pacific/Tongatapu",
    "Samoa Standard Time": "Pacific/Apia",
    "Line Islands Standard Time": "Pacific/Kiritimati",
    # Ids of older Windows versions, still found in long-lived recurring series.
    "Mexico Standard Time": "America/Mexico_City",
    "Mexico Standard Time 2": "America/Chihuahua",
    "Mid-Atlantic Standard Time": "Etc/GMT+2",
    "Armenian Standard Time": "Asia/Yerevan",
    "Kamchatka Standard Time": "Asia/Kamchatka",
    "Malay Peninsula Standard Time": "Asia/Singapore",
    "Coordinated Universal Time": "Etc/UTC",
    "Greenwich Mean Time": "Etc/GMT",
}

# Display names ("(UTC+01:00) Amsterdam, Berlin, …") of the zones people meet most, keyed by
# the text after the offset, normalised by _display_key. Older Outlook versions put these in
# TZID; the offset prefix alone is not enough (it does not say whether and when DST applies).
_DISPLAY_NAMES: dict[str, str] = {
    "pacific time (us & canada)": "Pacific Standard Time",
    "pacific time (us & canada); tijuana": "Pacific Standard Time",
    "mountain time (us & canada)": "Mountain Standard Time",
    "arizona": "US Mountain Standard Time",
    "central time (us & canada)": "Central Standard Time",
    "eastern time (us & canada)": "Eastern Standard Time",
    "indiana (east)": "US Eastern Standard Time",
    "atlantic time (canada)": "Atlantic Standard Time",
    "newfoundland": "Newfoundland Standard Time",
    "brasilia": "E. South America Standard Time",
    "city of buenos aires": "Argentina Standard Time",
    "buenos aires": "Argentina Standard Time",
    "hawaii": "Hawaiian Standard Time",
    "alaska": "Alaskan Standard Time",
    "guadalajara, mexico city, monterrey": "Central Standard Time (Mexico)",
    "bogota, lima, quito, rio branco": "SA Pacific Standard Time",
    "bogota, lima, quito": "SA Pacific Standard Time",
    "santiago": "Pacific SA Standard Time",
    "coordinated universal time": "UTC",
    "dublin, edinburgh, lisbon, london": "GMT Standard Time",
    "greenwich mean time : dublin, edinburgh, lisbon, london": "GMT Standard Time",
    "monrovia, reykjavik": "Greenwich Standard Time",
    "casablanca": "Morocco Standard Time",
    "amsterdam, berlin, bern, rome, stockholm, vienna": "W. Europe Standard Time",
    "belgrade, bratislava, budapest, ljubljana, prague": "Central Europe Standard Time",
    "brussels, copenhagen, madrid, paris": "Romance Standard Time",
    "sarajevo, skopje, warsaw, zagreb": "Central European Standard Time",
    "west central africa": "W. Central Africa Standard Time",
    "athens, bucharest": "GTB Standard Time",
    "athens, bucharest, istanbul": "GTB Standard Time",
    "helsinki, kyiv, riga, sofia, tallinn, vilnius": "FLE Standard Time",
    "helsinki, kiev, riga, sofia, tallinn, vilnius": "FLE Standard Time",
    "jerusalem": "Israel Standard Time",
    "cairo": "Egypt Standard Time",
    "harare, pretoria": "South Africa Standard Time",
    "istanbul": "Turkey Standard Time",
    "moscow, st. petersburg": "Russian Standard Time",
    "moscow, st. petersburg, volgograd": "Russian Standard Time",
    "kuwait, riyadh": "Arab Standard Time",
    "nairobi": "E. Africa Standard Time",
    "tehran": "Iran Standard Time",
    "abu dhabi, muscat": "Arabian Standard Time",
    "kabul": "Afghanistan Standard Time",
    "islamabad, karachi": "Pakistan Standard Time",
    "chennai, kolkata, mumbai, new delhi": "India Standard Time",
    "kathmandu": "Nepal Standard Time",
    "dhaka": "Bangladesh Standard Time",
    "bangkok, hanoi, jakarta": "SE Asia Standard Time",
    "beijing, chongqing, hong kong, urumqi": "China Standard Time",
    "kuala lumpur, singapore": "Singapore Standard Time",
    "perth": "W. Australia Standard Time",
    "taipei": "Taipei Standard Time",
    "osaka, sapporo, tokyo": "Tokyo Standard Time",
    "seoul": "Korea Standard Time",
    "adelaide": "Cen. Australia Standard Time",
    "darwin": "AUS Central Standard Time",
    "brisbane": "E. Australia Standard Time",
    "canberra, melbourne, sydney": "AUS Eastern Standard Time",
    "hobart": "Tasmania Standard Time",
    "auckland, wellington": "New Zealand Standard Time",
}

# "(UTC+01:00) ", "(GMT+01.00) ", "(UTC) " at the start of a display name.
_OFFSET_PREFIX = re.compile(
    r"^\s*\(\s*(?:utc|gmt)\s*(?:[+-]\s*\d{1,2}(?:[:.]\d{2})?)?\s*\)\s*", re.IGNORECASE
)

# Case-insensitive views, built on first use (nothing happens at import time).
_lowered: dict[str, str] | None = None


def _display_key(text: str) -> str:
    return " ".join(text.lower().split())


def windows_to_iana(name: str) -> str | None:
    """The IANA zone for a Windows zone id or display name, or None if it is not one.

    Matching ignores case and surrounding whitespace, so ``w. europe standard time`` and
    ``(UTC+01:00) Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna`` both give
    ``Europe/Berlin``. Never raises.
    """
    global _lowered
    if not isinstance(name, str) or not name or len(name) > 200:
        return None
    if _lowered is None:
        _lowered = {_display_key(k): v for k, v in WINDOWS_ZONES.items()}
    key = _display_key(name)
    found = _lowered.get(key)
    if found is not None:
        return found
    stripped = _OFFSET_PREFIX.sub("", name, count=1)
    if stripped != name:
        windows = _DISPLAY_NAMES.get(_display_key(stripped))
        if windows is not None:
            return WINDOWS_ZONES[windows]
    return None
