-- vpump telemetry: a Wireshark dissector for captures of the vpump link (docs/captures.md).
--
-- Captures from `vpump serve --capture FILE` and `vpump prog --capture FILE` are pcapng with
-- link type 147 (DLT_USER0, Wireshark's encapsulation USER0), one frame of docs/protocol.md
-- per packet.  This dissector registers itself for that encapsulation and shows: the frame
-- fields, the CRC checked (CRC-16/CCITT-FALSE, as protocol/crc.py), the command's name, every
-- request and response field with its unit, a NAK's reason with the field, value and allowed
-- range, the session's counter and MAC (shown, not checked: that needs the session key), the
-- event log's entries; malformed data and bad CRCs as expert info.
--
-- Install: `vpump wireshark --install` copies this file to your personal Lua plugins folder
-- (~/.local/lib/wireshark/plugins); or run tshark -X lua_script:PATH/vpump.lua -r FILE.
-- Display filters: vpump, vpump.cmd == 0x20, vpump.nak.reason, vpump.crc.status == 0,
-- vpump.program_continuous.basal_ug_per_day > 400, vpump.interrogate.resp.reservoir_nl, ...
--
-- The tables below are generated from the project's registries (protocol/commands.py,
-- protocol/reasons.py, protocol/fields.py, firmware/eventlog.py) by `vpump wireshark
-- --generate`; a test fails when they are stale.  The logic after them is written by hand.
-- Runs on Wireshark's Lua 5.2 (bit32) and 5.3/5.4 (native bit operators).

-- BEGIN GENERATED TABLES (`vpump wireshark --generate` writes them from protocol/ and firmware/: do not edit by hand)
local GEN = {}
GEN.max_payload = 1024
GEN.nak_size = 26
GEN.session_overhead = 12
GEN.read_log_max_entries = 32
GEN.flex_days = 7
GEN.flex_max_steps = 13
-- code -> {name, what it means}
GEN.reasons = {
    [0]={"ok", "accepted"},
    [1]={"bad_crc", "frame CRC did not match; resend"},
    [2]={"bad_length", "frame length field does not match the payload"},
    [3]={"unknown_command", "the pump does not know this command"},
    [4]={"bad_version", "protocol version not supported by this pump"},
    [5]={"not_authenticated", "open an authenticated session first"},
    [6]={"bad_mac", "message authentication failed (wrong key or altered frame)"},
    [7]={"replay", "frame counter not newer than the last one: replay refused"},
    [8]={"role_not_allowed", "this role may not use this command"},
    [9]={"auth_locked_out", "too many failed authentications; wait and retry"},
    [10]={"busy", "the pump is busy; retry shortly"},
    [16]={"out_of_range", "a field is outside its allowed range"},
    [17]={"over_hard_limit", "over a drug-library hard limit: never allowed"},
    [18]={"soft_limit_needs_confirm", "over a drug-library soft limit: resend with confirm"},
    [32]={"state_does_not_allow", "the pump's state does not allow this"},
    [33]={"no_program", "no therapy is programmed; program one first"},
    [34]={"therapy_halted", "therapy is halted by a critical alarm; clear it first"},
    [35]={"therapy_stopped", "therapy is stopped; start it first"},
    [36]={"bolus_in_progress", "a bolus is in progress; wait for it to finish"},
    [37]={"lockout_active", "patient bolus lockout is running; wait for it to end"},
    [38]={"max_activations", "maximum patient boluses in 24 h reached"},
    [39]={"patient_bolus_disabled", "patient bolus is not enabled"},
    [40]={"refill_first", "the reservoir is empty: refill before clearing"},
    [41]={"motor_still_stalled", "the motor still does not turn"},
    [42]={"end_of_service", "battery at end of service: replace the pump"},
    [43]={"storage_failed", "could not commit to memory; nothing was changed"},
}
-- field id -> {name, unit}
GEN.fields = {
    [0]={"", ""},
    [1]={"basal_ug_per_day", "ug/day"},
    [2]={"daily_dose_ug", "ug/day"},
    [3]={"rate_increase_24h_ug", "ug"},
    [4]={"bolus_dose_ug", "ug"},
    [5]={"bolus_duration_ms", "ms"},
    [6]={"patient_bolus_duration_ms", "ms"},
    [7]={"lockout_ms", "ms"},
    [8]={"max_per_24h", "per 24 h"},
    [9]={"role", ""},
    [10]={"counter", ""},
    [11]={"log_start", ""},
    [12]={"flex_days", ""},
    [13]={"flex_steps_per_day", ""},
    [14]={"flex_start_minute", "min after midnight"},
    [15]={"flex_ug_per_day", "ug/day"},
    [16]={"volume_nl", "nL"},
    [17]={"concentration_ug_per_ml", "ug/mL"},
    [18]={"low_reservoir_alarm_nl", "nL"},
    [19]={"silence_ms", "ms"},
    [20]={"wall_ms", "ms"},
    [21]={"daily_dose_soft_ug", "ug/day"},
    [22]={"daily_dose_hard_ug", "ug/day"},
    [23]={"bolus_soft_ug", "ug"},
    [24]={"bolus_hard_ug", "ug"},
    [25]={"rate_increase_soft_pct", "%"},
    [26]={"rate_increase_hard_pct", "%"},
    [27]={"patient_bolus_dose_ug", "ug"},
}
-- code -> the command; request/response: fields in order, or a special layout
GEN.commands = {
    [0x01]={name="identify", auth=false, patient=true,
        request={},
        response={
            {key="model", type="text", size=16},
            {key="serial", type="text", size=16},
            {key="firmware_version", type="version", size=3},
            {key="protocol_version", type="u8", size=1},
        }},
    [0x02]={name="session_open", auth=false, patient=true,
        request={
            {key="role", type="role", size=1, names={[0]="", [1]="clinician", [2]="patient"}},
            {key="cn", type="bytes", size=16},
        },
        response={
            {key="pn", type="bytes", size=16},
            {key="session_id", type="u32", size=4},
        }},
    [0x03]={name="session_auth", auth=false, patient=true,
        request={
            {key="session_id", type="u32", size=4},
            {key="proof", type="bytes", size=16},
        },
        response={
            {key="proof", type="bytes", size=16},
        }},
    [0x04]={name="session_close", auth=true, patient=true,
        request={},
        response={}},
    [0x10]={name="interrogate", auth=true, patient=true,
        request={},
        response={
            {key="therapy", type="enum", size=1, names={[0]="idle", [1]="infusing", [2]="bolus", [3]="lockout", [4]="reservoir_empty", [5]="motor_stall", [6]="battery_depleted", [7]="fault"}},
            {key="reservoir", type="enum", size=1, names={[0]="reservoir_ok", [1]="low_reservoir"}},
            {key="battery", type="enum", size=1, names={[0]="battery_ok", [1]="elective_replacement"}},
            {key="therapy_on", type="bool", size=1},
            {key="mode", type="enum", size=1, names={[0]="none", [1]="continuous", [2]="flex"}},
            {key="basal_ug_per_day", type="u32", size=4, unit="ug/day"},
            {key="reservoir_nl", type="u32", size=4, unit="nL"},
            {key="concentration_ug_per_ml", type="u32", size=4, unit="ug/mL"},
            {key="low_reservoir_alarm_nl", type="u32", size=4, unit="nL"},
            {key="hours_to_alarm", type="i32", size=4, unit="h"},
            {key="hours_to_empty", type="i32", size=4, unit="h"},
            {key="battery_remaining_nah", type="u64", size=8, unit="nAh"},
            {key="battery_mv", type="u16", size=2, unit="mV"},
            {key="days_to_replacement", type="i32", size=4, unit="days"},
            {key="alarms", type="bits", size=2, names={[0]="low_reservoir", [1]="elective_replacement", [2]="reservoir_empty", [3]="motor_stall", [4]="end_of_service", [5]="memory_fault", [6]="low_battery_reset"}},
            {key="lockout_until_ms", type="u64", size=8, unit="ms", wall=true},
            {key="delivered_ug", type="u64", size=8, unit="ug"},
            {key="wall_ms", type="u64", size=8, unit="ms", wall=true},
            {key="boot_count", type="u16", size=2},
        }},
    [0x11]={name="read_log", auth=true, patient=false,
        request={
            {key="start_seq", type="u32", size=4},
            {key="max_entries", type="u8", size=1, range={1, 32}},
        },
        response={special="log"}},
    [0x12]={name="read_limits", auth=true, patient=false,
        request={},
        response={
            {key="daily_dose_soft_ug", type="u32", size=4, unit="ug/day"},
            {key="daily_dose_hard_ug", type="u32", size=4, unit="ug/day"},
            {key="bolus_soft_ug", type="u32", size=4, unit="ug"},
            {key="bolus_hard_ug", type="u32", size=4, unit="ug"},
            {key="rate_increase_soft_pct", type="u32", size=4, unit="%"},
            {key="rate_increase_hard_pct", type="u32", size=4, unit="%"},
            {key="concentration_ug_per_ml", type="u32", size=4, unit="ug/mL"},
        }},
    [0x13]={name="set_limits", auth=true, patient=false,
        request={
            {key="daily_dose_soft_ug", type="u32", size=4, unit="ug/day"},
            {key="daily_dose_hard_ug", type="u32", size=4, unit="ug/day"},
            {key="bolus_soft_ug", type="u32", size=4, unit="ug"},
            {key="bolus_hard_ug", type="u32", size=4, unit="ug"},
            {key="rate_increase_soft_pct", type="u32", size=4, unit="%"},
            {key="rate_increase_hard_pct", type="u32", size=4, unit="%"},
            {key="concentration_ug_per_ml", type="u32", size=4, unit="ug/mL"},
        },
        response={pair={"old", "new"}, items={
            {key="daily_dose_soft_ug", type="u32", size=4, unit="ug/day"},
            {key="daily_dose_hard_ug", type="u32", size=4, unit="ug/day"},
            {key="bolus_soft_ug", type="u32", size=4, unit="ug"},
            {key="bolus_hard_ug", type="u32", size=4, unit="ug"},
            {key="rate_increase_soft_pct", type="u32", size=4, unit="%"},
            {key="rate_increase_hard_pct", type="u32", size=4, unit="%"},
            {key="concentration_ug_per_ml", type="u32", size=4, unit="ug/mL"},
        }}},
    [0x20]={name="program_continuous", auth=true, patient=false,
        request={
            {key="basal_ug_per_day", type="u32", size=4, unit="ug/day"},
            {key="confirm", type="bool", size=1},
        },
        response={
            {key="old_daily_ug", type="u32", size=4, unit="ug/day"},
            {key="new_daily_ug", type="u32", size=4, unit="ug/day"},
        }},
    [0x21]={name="program_flex", auth=true, patient=false,
        request={special="flex"},
        response={
            {key="old_daily_ug", type="u32", size=4, unit="ug/day"},
            {key="new_daily_ug", type="u32", size=4, unit="ug/day"},
        }},
    [0x22]={name="clinician_bolus", auth=true, patient=false,
        request={
            {key="dose_ug", type="u32", size=4, unit="ug"},
            {key="duration_ms", type="u32", size=4, unit="ms"},
            {key="confirm", type="bool", size=1},
        },
        response={
            {key="dose_ug", type="u32", size=4, unit="ug"},
            {key="duration_ms", type="u32", size=4, unit="ms"},
        }},
    [0x23]={name="patient_bolus", auth=true, patient=true,
        request={},
        response={
            {key="dose_ug", type="u32", size=4, unit="ug"},
            {key="lockout_until_ms", type="u64", size=8, unit="ms", wall=true},
        }},
    [0x24]={name="set_patient_bolus", auth=true, patient=false,
        request={
            {key="enabled", type="bool", size=1},
            {key="dose_ug", type="u32", size=4, unit="ug"},
            {key="duration_ms", type="u32", size=4, unit="ms"},
            {key="lockout_ms", type="u32", size=4, unit="ms"},
            {key="max_per_24h", type="u8", size=1, unit="per 24 h"},
            {key="confirm", type="bool", size=1},
        },
        response={
            {key="old_enabled", type="bool", size=1},
            {key="old_dose_ug", type="u32", size=4, unit="ug"},
        }},
    [0x25]={name="refill", auth=true, patient=false,
        request={
            {key="volume_nl", type="u32", size=4, unit="nL"},
            {key="concentration_ug_per_ml", type="u32", size=4, unit="ug/mL"},
            {key="bridge", type="bool", size=1},
        },
        response={
            {key="old_estimate_nl", type="u32", size=4, unit="nL"},
            {key="new_estimate_nl", type="u32", size=4, unit="nL"},
        }},
    [0x26]={name="stop", auth=true, patient=false,
        request={},
        response={}},
    [0x27]={name="start", auth=true, patient=false,
        request={},
        response={}},
    [0x28]={name="set_clock", auth=true, patient=false,
        request={
            {key="wall_ms", type="u64", size=8, unit="ms", wall=true},
        },
        response={
            {key="old_wall_ms", type="u64", size=8, unit="ms", wall=true},
        }},
    [0x29]={name="silence_alarms", auth=true, patient=true,
        request={
            {key="minutes", type="u16", size=2, unit="min"},
        },
        response={
            {key="silenced", type="u8", size=1},
        }},
    [0x2A]={name="clear_alarm", auth=true, patient=false,
        request={},
        response={}},
    [0x2B]={name="alarm_test", auth=true, patient=false,
        request={},
        response={}},
    [0x2C]={name="set_low_reservoir_alarm", auth=true, patient=false,
        request={
            {key="volume_nl", type="u32", size=4, unit="nL"},
        },
        response={
            {key="old_volume_nl", type="u32", size=4, unit="nL"},
        }},
}
-- event code -> {name, args: {{name, unit or what it indexes}, ...}}
GEN.events = {
    [1]={name="boot", args={{"boot_count", "count"}, {"restored", "0/1"}, {"lost_nl", "nL"}}},
    [2]={name="state", args={{"region", "region index"}, {"from", "state index in the region"}, {"to", "state index in the region"}, {"trigger", "trigger index"}}},
    [3]={name="program", args={{"mode", "mode index"}, {"daily_ug", "ug/day"}, {"confirmed", "0/1"}}},
    [4]={name="bolus_start", args={{"kind", "kind index"}, {"dose_ug", "ug"}, {"volume_nl", "nL"}, {"duration_s", "s"}}},
    [5]={name="bolus_end", args={{"kind", "kind index"}, {"delivered_nl", "nL"}, {"completed", "0/1"}}},
    [7]={name="refill", args={{"volume_ul", "uL"}, {"concentration_ug_per_ml", "ug/mL"}, {"bridge", "0/1"}, {"estimate_before_ul", "uL"}}},
    [8]={name="alarm_raised", args={{"alarm", "alarm index"}}},
    [9]={name="alarm_cleared", args={{"alarm", "alarm index"}}},
    [10]={name="alarm_silenced", args={{"alarm", "alarm index"}, {"minutes", "min"}}},
    [11]={name="refused", args={{"reason", "reason code"}, {"request", "request index"}, {"value", "the request's value, in its units"}, {"limit", "the limit, in the value's units"}}},
    [12]={name="clock_set", args={{"delta_s", "s"}}},
    [13]={name="limits_set", args={{"daily_dose_soft_ug", "ug/day"}, {"daily_dose_hard_ug", "ug/day"}, {"bolus_soft_ug", "ug"}, {"bolus_hard_ug", "ug"}}},
    [14]={name="patient_bolus_set", args={{"dose_ug", "ug"}, {"duration_s", "s"}, {"lockout_min", "min"}, {"max_per_24h", "count"}}},
    [15]={name="alarm_volume_set", args={{"low_reservoir_alarm_ul", "uL"}}},
    [16]={name="flex_step", args={{"ug_per_day", "ug/day"}}},
    [17]={name="auth", args={{"role", "role index"}, {"result", "result index"}, {"count", "count"}}},
    [18]={name="commit_failed", args={}},
    [19]={name="storage_corrupt", args={{"slots", "count"}, {"log_records", "count"}, {"restored_seq", "seq"}, {"damaged_seq", "seq"}}},
    [20]={name="outage", args={{"off_s", "s"}, {"missed_nl", "nL"}}},
    [21]={name="session_end", args={{"role", "role index"}, {"cause", "cause index"}, {"count", "count"}}},
}
-- what event args index
GEN.arg_names = {
    alarm={[0]="low_reservoir", [1]="elective_replacement", [2]="reservoir_empty", [3]="motor_stall", [4]="end_of_service", [5]="memory_fault", [6]="low_battery_reset"},
    cause={[0]="closed", [1]="idle", [2]="replaced"},
    kind={[0]="clinician", [1]="patient", [2]="bridge"},
    mode={[0]="continuous", [1]="flex"},
    region={[0]="therapy", [1]="reservoir", [2]="battery"},
    request={[0]="program", [1]="start", [2]="stop", [3]="clinician_bolus", [4]="patient_bolus", [5]="refill", [6]="clear_alarm", [7]="set_patient_bolus", [8]="set_low_reservoir_alarm", [9]="set_limits", [10]="silence_alarms", [11]="set_clock"},
    result={[0]="failed", [1]="ok", [2]="locked_out"},
    role={[0]="", [1]="clinician", [2]="patient"},
    trigger={[0]="start", [1]="stop", [2]="program", [3]="clinician_bolus", [4]="patient_bolus", [5]="bolus_done", [6]="lockout_done", [7]="refill", [8]="reservoir_empty", [9]="motor_stall", [10]="battery_eos", [11]="fault", [12]="clear_alarm", [13]="reservoir_level", [14]="battery_level"},
}
GEN.event_flags = {restored=true, confirmed=true, bridge=true, completed=true}
GEN.alarms = {[0]="low_reservoir", [1]="elective_replacement", [2]="reservoir_empty", [3]="motor_stall", [4]="end_of_service", [5]="memory_fault", [6]="low_battery_reset"}
-- the state event: region index -> its states
GEN.states = {
    [0]={[0]="idle", [1]="infusing", [2]="bolus", [3]="lockout", [4]="reservoir_empty", [5]="motor_stall", [6]="battery_depleted", [7]="fault"},
    [1]={[0]="reservoir_ok", [1]="low_reservoir"},
    [2]={[0]="battery_ok", [1]="elective_replacement"},
}
-- END GENERATED TABLES

local bitops = bit32 or bit
if bitops == nil then
    bitops = load([[return {
        band = function(a, b) return a & b end, bor = function(a, b) return a | b end,
        bxor = function(a, b) return a ~ b end, lshift = function(a, n) return a << n end,
        rshift = function(a, n) return a >> n end}]])()
end
local band, bxor, lshift, rshift = bitops.band, bitops.bxor, bitops.lshift, bitops.rshift

local SYNC = 0xA55A
local MIN_LEN = 3
local MAX_LEN = GEN.max_payload + MIN_LEN
local RESPONSE = 0x80
local FIRST_REQUEST_REASON = 16         -- reasons below it are frame and session level
local ROLE_NOT_ALLOWED = 8              -- ... except this one, which carries a MAC

-- CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, not reflected, xorout 0 (protocol/crc.py).
local CRC_TABLE = {}
for byte = 0, 255 do
    local crc = lshift(byte, 8)
    for _ = 1, 8 do
        if band(crc, 0x8000) ~= 0 then
            crc = band(bxor(lshift(crc, 1), 0x1021), 0xFFFF)
        else
            crc = band(lshift(crc, 1), 0xFFFF)
        end
    end
    CRC_TABLE[byte] = crc
end

local function crc16(tvb, offset, length)
    local bytes = tvb:range(offset, length):bytes()
    local crc = 0xFFFF
    for i = 0, length - 1 do
        crc = bxor(band(lshift(crc, 8), 0xFFFF), CRC_TABLE[bxor(rshift(crc, 8), bytes:get_index(i))])
    end
    return crc
end

-- ------------------------------------------------------------------------------ fields

local vpump = Proto("vpump", "vpump telemetry (implantable pump)")
local F = {}
local FIELD_LIST = {}

local function add_field(abbr, field)
    F[abbr] = field
    FIELD_LIST[#FIELD_LIST + 1] = field
    return field
end

local function names_of(list)
    local out = {}
    for i, name in pairs(list) do out[i] = name end
    return out
end

local function with_unit(unit)
    if unit and unit ~= "" then
        return base.UNIT_STRING, {" " .. unit}
    end
    return base.DEC, nil
end

local BOOL_NAMES = {[0] = "false", [1] = "true"}
local ROLE_NAMES = {[1] = "clinician", [2] = "patient"}

local COMMAND_NAMES = {}
for code, spec in pairs(GEN.commands) do COMMAND_NAMES[code] = string.upper(spec.name) end
local CMD_NAMES = {}
for code, name in pairs(COMMAND_NAMES) do
    CMD_NAMES[code] = name
    CMD_NAMES[code + RESPONSE] = name .. " response"
end
local REASON_NAMES = {}
for code, r in pairs(GEN.reasons) do REASON_NAMES[code] = r[1] end
local FIELD_NAMES = {}
for id, f in pairs(GEN.fields) do FIELD_NAMES[id] = (id == 0) and "(none)" or f[1] end
local EVENT_NAMES = {}
for code, e in pairs(GEN.events) do EVENT_NAMES[code] = e.name end

add_field("vpump.sync", ProtoField.uint16("vpump.sync", "Sync", base.HEX))
add_field("vpump.len", ProtoField.uint16("vpump.len", "LEN (VER, SEQ, CMD and payload)", base.DEC))
add_field("vpump.version", ProtoField.uint8("vpump.version", "VER", base.DEC))
add_field("vpump.seq", ProtoField.uint8("vpump.seq", "SEQ", base.DEC))
add_field("vpump.cmd", ProtoField.uint8("vpump.cmd", "CMD", base.HEX, CMD_NAMES))
add_field("vpump.response", ProtoField.uint8("vpump.response", "Response", base.DEC, BOOL_NAMES))
add_field("vpump.command", ProtoField.string("vpump.command", "Command"))
add_field("vpump.payload", ProtoField.bytes("vpump.payload", "Payload"))
add_field("vpump.crc", ProtoField.uint16("vpump.crc", "CRC", base.HEX))
add_field("vpump.crc.computed", ProtoField.uint16("vpump.crc.computed", "CRC computed", base.HEX))
add_field("vpump.crc.status", ProtoField.uint8("vpump.crc.status", "CRC status", base.DEC,
                                               {[0] = "Bad", [1] = "Good"}))
add_field("vpump.counter", ProtoField.uint32("vpump.counter", "Session counter", base.DEC))
add_field("vpump.mac", ProtoField.bytes("vpump.mac", "MAC (HMAC-SHA256, first 8 bytes)"))
add_field("vpump.status", ProtoField.uint8("vpump.status", "Status", base.DEC, REASON_NAMES))
add_field("vpump.nak.reason", ProtoField.uint8("vpump.nak.reason", "NAK reason", base.DEC, REASON_NAMES))
add_field("vpump.nak.field", ProtoField.uint8("vpump.nak.field", "NAK field", base.DEC, FIELD_NAMES))
add_field("vpump.nak.value", ProtoField.int64("vpump.nak.value", "Value refused", base.DEC))
add_field("vpump.nak.lo", ProtoField.int64("vpump.nak.lo", "Lowest allowed", base.DEC))
add_field("vpump.nak.hi", ProtoField.int64("vpump.nak.hi", "Highest allowed", base.DEC))
add_field("vpump.garbage", ProtoField.bytes("vpump.garbage", "Bytes that are not a frame"))
add_field("vpump.trailing", ProtoField.bytes("vpump.trailing", "Bytes after the frame"))

local function item_field(abbr, item)
    local t = item.type
    if t == "u8" or t == "u16" or t == "u32" or t == "u64" then
        local b, units = with_unit(item.unit)
        local make = ({u8 = ProtoField.uint8, u16 = ProtoField.uint16, u32 = ProtoField.uint32,
                       u64 = ProtoField.uint64})[t]
        return make(abbr, item.key, b, units)
    elseif t == "i32" or t == "i64" then
        local b, units = with_unit(item.unit)
        return (t == "i32" and ProtoField.int32 or ProtoField.int64)(abbr, item.key, b, units)
    elseif t == "bool" then
        return ProtoField.uint8(abbr, item.key, base.DEC, BOOL_NAMES)
    elseif t == "role" then
        return ProtoField.uint8(abbr, item.key, base.DEC, ROLE_NAMES)
    elseif t == "enum" then
        return ProtoField.uint8(abbr, item.key, base.DEC, names_of(item.names))
    elseif t == "bits" then
        return ProtoField.uint16(abbr, item.key, base.HEX)
    elseif t == "bytes" then
        return ProtoField.bytes(abbr, item.key)
    else        -- text, version
        return ProtoField.string(abbr, item.key)
    end
end

local function add_items(prefix, items)
    for _, item in ipairs(items) do
        local abbr = prefix .. "." .. item.key
        add_field(abbr, item_field(abbr, item))
        if item.type == "bits" then
            for bit, name in pairs(item.names) do
                local sub = abbr .. "." .. name
                add_field(sub, ProtoField.bool(sub, name, 16, nil, lshift(1, bit)))
            end
        end
    end
end

local function add_codec(prefix, codec)
    if codec.special == "log" then
        add_field(prefix .. ".count", ProtoField.uint8(prefix .. ".count", "count", base.DEC))
        add_field(prefix .. ".next_seq", ProtoField.uint32(prefix .. ".next_seq", "next_seq", base.DEC))
        local e = prefix .. ".entry"
        add_field(e .. ".seq", ProtoField.uint32(e .. ".seq", "seq", base.DEC))
        add_field(e .. ".t_ms", ProtoField.uint64(e .. ".t_ms", "t_ms", base.UNIT_STRING, {" ms"}))
        add_field(e .. ".code", ProtoField.uint8(e .. ".code", "code", base.DEC, EVENT_NAMES))
        add_field(e .. ".arg", ProtoField.int32(e .. ".arg", "arg", base.DEC))
    elseif codec.special == "flex" then
        add_field(prefix .. ".confirm", ProtoField.uint8(prefix .. ".confirm", "confirm", base.DEC, BOOL_NAMES))
        add_field(prefix .. ".steps", ProtoField.uint8(prefix .. ".steps", "steps", base.DEC))
        add_field(prefix .. ".start_minute", ProtoField.uint16(prefix .. ".start_minute", "start_minute",
                                                               base.UNIT_STRING, {" min after midnight"}))
        add_field(prefix .. ".ug_per_day", ProtoField.uint32(prefix .. ".ug_per_day", "ug_per_day",
                                                             base.UNIT_STRING, {" ug/day"}))
    elseif codec.pair then
        for _, part in ipairs(codec.pair) do add_items(prefix .. "." .. part, codec.items) end
    else
        add_items(prefix, codec)
    end
end

for _, spec in pairs(GEN.commands) do
    add_codec("vpump." .. spec.name, spec.request)
    add_codec("vpump." .. spec.name .. ".resp", spec.response)
end
vpump.fields = FIELD_LIST

local ex_bad_crc = ProtoExpert.new("vpump.crc.bad", "Bad CRC", expert.group.CHECKSUM, expert.severity.ERROR)
local ex_garbage = ProtoExpert.new("vpump.garbage.expert", "Not a frame", expert.group.MALFORMED,
                                   expert.severity.ERROR)
local ex_partial = ProtoExpert.new("vpump.partial", "Incomplete frame", expert.group.MALFORMED,
                                   expert.severity.WARN)
local ex_malformed = ProtoExpert.new("vpump.malformed", "Malformed payload", expert.group.MALFORMED,
                                     expert.severity.ERROR)
local ex_range = ProtoExpert.new("vpump.out_of_range", "Value outside its wire range",
                                 expert.group.PROTOCOL, expert.severity.WARN)
local ex_nak = ProtoExpert.new("vpump.nak.expert", "NAK", expert.group.RESPONSE_CODE, expert.severity.NOTE)
local ex_unknown = ProtoExpert.new("vpump.unknown_command", "Unknown command", expert.group.UNDECODED,
                                   expert.severity.WARN)
vpump.experts = {ex_bad_crc, ex_garbage, ex_partial, ex_malformed, ex_range, ex_nak, ex_unknown}

-- ------------------------------------------------------------------------------ decoding

local function wall_text(ms)
    -- ms since 1970 UTC (a UInt64) -> " (2026-01-05 08:00:00.000 UTC)"
    local n = ms:tonumber()
    if n == 0 then return " (none)" end
    local s = math.floor(n / 1000)
    return string.format(" (%s.%03d UTC)", os.date("!%Y-%m-%d %H:%M:%S", s), n - s * 1000)
end

local function unit_text(unit)
    if unit and unit ~= "" then return " " .. unit end
    return ""
end

-- One item of a fixed layout at offset; returns its tree item.
local function add_item(tree, tvb, offset, prefix, item)
    local abbr = prefix .. "." .. item.key
    local field = F[abbr]
    local range = tvb(offset, item.size)
    local t = item.type
    local ti
    if t == "text" then
        local raw = range:bytes()
        local len = 0
        while len < raw:len() and raw:get_index(len) ~= 0 do len = len + 1 end
        ti = tree:add(field, range, len > 0 and tvb(offset, len):string() or "")
    elseif t == "version" then
        ti = tree:add(field, range, string.format("%d.%d.%d", tvb(offset, 1):uint(),
                                                  tvb(offset + 1, 1):uint(), tvb(offset + 2, 1):uint()))
    else
        ti = tree:add(field, range)
    end
    if item.wall then
        ti:append_text(wall_text(range:uint64()))
    end
    if t == "bits" then
        for bit = 0, 15 do
            local name = item.names[bit]
            if name then ti:add(F[abbr .. "." .. name], range) end
        end
    end
    -- Values a decoder refuses (protocol/commands.py): marked, not hidden.
    local v = nil
    if t == "bool" or t == "enum" or t == "role" then v = range:uint() end
    if (t == "bool" and v > 1) or (t == "enum" and item.names[v] == nil)
            or (t == "role" and ROLE_NAMES[v] == nil) then
        ti:add_proto_expert_info(ex_range, string.format("%s = %d is not one of its values", item.key, v))
    end
    if item.range and (range:uint() < item.range[1] or range:uint() > item.range[2]) then
        ti:add_proto_expert_info(ex_range, string.format("%s = %d: allowed %d..%d", item.key,
                                                         range:uint(), item.range[1], item.range[2]))
    end
    return ti
end

local function layout_size(items)
    local n = 0
    for _, item in ipairs(items) do n = n + item.size end
    return n
end

local function wrong_length(tree, what, got, expected)
    tree:add_proto_expert_info(ex_malformed, string.format("%s: %d bytes; a %s has %s bytes",
                                                           what, got, what, expected))
end

local function decode_items(tree, tvb, offset, length, prefix, items, what)
    local size = layout_size(items)
    if length ~= size then
        wrong_length(tree, what, length, tostring(size))
        return false
    end
    for _, item in ipairs(items) do
        add_item(tree, tvb, offset, prefix, item)
        offset = offset + item.size
    end
    return true
end

local function event_arg_text(event, name, value, args)
    local names = GEN.arg_names[name]
    if event.name == "state" then
        if name == "from" or name == "to" then
            local region = GEN.states[args[1]]
            names = region
        end
    end
    if GEN.event_flags[name] then
        return BOOL_NAMES[value] or tostring(value)
    end
    if name == "reason" then
        return REASON_NAMES[value] or tostring(value)
    end
    if names and names[value] then return names[value] end
    return tostring(value)
end

local function decode_log(tree, tvb, offset, length, prefix, what)
    if length < 5 then
        wrong_length(tree, what, length, "5 + 29 x count")
        return false
    end
    local count = tvb(offset, 1):uint()
    if length ~= 5 + 29 * count then
        wrong_length(tree, what, length, string.format("5 + 29 x %d = %d", count, 5 + 29 * count))
        return false
    end
    tree:add(F[prefix .. ".count"], tvb(offset, 1))
    tree:add(F[prefix .. ".next_seq"], tvb(offset + 1, 4))
    local pos = offset + 5
    local e = prefix .. ".entry"
    for _ = 1, count do
        local code = tvb(pos + 12, 1):uint()
        local event = GEN.events[code] or {name = "code_" .. code, args = {}}
        local sub = tree:add(vpump, tvb(pos, 29), string.format("Entry %d: %s", tvb(pos, 4):uint(), event.name))
        sub:add(F[e .. ".seq"], tvb(pos, 4))
        sub:add(F[e .. ".t_ms"], tvb(pos + 4, 8)):append_text(wall_text(tvb(pos + 4, 8):uint64()))
        sub:add(F[e .. ".code"], tvb(pos + 12, 1))
        local values = {}
        for i = 1, 4 do values[i] = tvb(pos + 13 + 4 * (i - 1), 4):int() end
        local parts = {}
        for i = 1, 4 do
            local r = tvb(pos + 13 + 4 * (i - 1), 4)
            local arg = event.args[i]
            local ti = sub:add(F[e .. ".arg"], r)
            if arg then
                local name, unit = arg[1], arg[2]
                local shown = event_arg_text(event, name, values[i], values)
                local text = tostring(values[i])
                if shown ~= text then
                    text = string.format("%s (%s)", shown, text)
                elseif unit ~= "" and not string.find(unit, " ") and unit ~= "count" and unit ~= "seq" then
                    text = text .. " " .. unit
                end
                ti:set_text(string.format("%s: %s", name, text))
                parts[#parts + 1] = name .. "=" .. shown
            end
        end
        sub:append_text(" " .. table.concat(parts, " "))
        pos = pos + 29
    end
    return true
end

local function decode_flex(tree, tvb, offset, length, prefix, what)
    local expected = "1 + 7 x (1 + 6 x steps)"
    if length < 1 then
        wrong_length(tree, what, length, expected)
        return false
    end
    add_item(tree, tvb, offset, prefix, {key = "confirm", type = "bool", size = 1})
    local pos, stop = offset + 1, offset + length
    local days = {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"}
    for day = 1, GEN.flex_days do
        if pos >= stop then
            wrong_length(tree, what, length, expected)
            return false
        end
        local k = tvb(pos, 1):uint()
        local sub = tree:add(vpump, tvb(pos, math.min(1 + 6 * k, stop - pos)), days[day])
        local ti = sub:add(F[prefix .. ".steps"], tvb(pos, 1))
        if k < 1 or k > GEN.flex_max_steps then
            ti:add_proto_expert_info(ex_range, string.format("steps = %d: allowed 1..%d", k, GEN.flex_max_steps))
            return false
        end
        pos = pos + 1
        if pos + 6 * k > stop then
            wrong_length(tree, what, length, expected)
            return false
        end
        for _ = 1, k do
            sub:add(F[prefix .. ".start_minute"], tvb(pos, 2))
            sub:add(F[prefix .. ".ug_per_day"], tvb(pos + 2, 4))
            pos = pos + 6
        end
    end
    if pos ~= stop then
        wrong_length(tree, what, length, string.format("%d (%s)", pos - offset, expected))
        return false
    end
    return true
end

local function decode_codec(tree, tvb, offset, length, prefix, codec, what)
    if codec.special == "log" then return decode_log(tree, tvb, offset, length, prefix, what) end
    if codec.special == "flex" then return decode_flex(tree, tvb, offset, length, prefix, what) end
    if codec.pair then
        local size = layout_size(codec.items)
        if length ~= 2 * size then
            wrong_length(tree, what, length, tostring(2 * size))
            return false
        end
        for i, part in ipairs(codec.pair) do
            local sub = tree:add(vpump, tvb(offset + (i - 1) * size, size), part)
            decode_items(sub, tvb, offset + (i - 1) * size, size, prefix .. "." .. part, codec.items, what)
        end
        return true
    end
    return decode_items(tree, tvb, offset, length, prefix, codec, what)
end

local function decode_nak(tree, tvb, offset, length, pinfo)
    if length ~= GEN.nak_size then
        wrong_length(tree, "NAK", length, tostring(GEN.nak_size))
        return
    end
    local reason = tvb(offset, 1):uint()
    local fid = tvb(offset + 1, 1):uint()
    local field = GEN.fields[fid]
    local unit = field and unit_text(field[2]) or ""
    tree:add(F["vpump.nak.reason"], tvb(offset, 1))
    tree:add(F["vpump.nak.field"], tvb(offset + 1, 1))
    tree:add(F["vpump.nak.value"], tvb(offset + 2, 8)):append_text(unit)
    tree:add(F["vpump.nak.lo"], tvb(offset + 10, 8)):append_text(unit)
    tree:add(F["vpump.nak.hi"], tvb(offset + 18, 8)):append_text(unit)
    local r = GEN.reasons[reason]
    local text = string.format("NAK %s: %s", r and r[1] or ("reason_" .. reason), r and r[2] or "unknown reason")
    if fid ~= 0 then
        text = text .. string.format(": %s = %s%s, allowed %s..%s%s", field and field[1] or ("field_" .. fid),
                                     tostring(tvb(offset + 2, 8):int64()), unit,
                                     tostring(tvb(offset + 10, 8):int64()),
                                     tostring(tvb(offset + 18, 8):int64()), unit)
    end
    tree:add_proto_expert_info(ex_nak, text)
    pinfo.cols.info:append(" " .. text)
end

local function dissect_frame(tvb, pinfo, root, len)
    local version, seq, cmd = tvb(4, 1):uint(), tvb(5, 1):uint(), tvb(6, 1):uint()
    root:add(F["vpump.version"], tvb(4, 1))
    root:add(F["vpump.seq"], tvb(5, 1))
    root:add(F["vpump.cmd"], tvb(6, 1))
    local response = band(cmd, RESPONSE) ~= 0
    local code = band(cmd, 0x7F)
    local spec = GEN.commands[code]
    root:add(F["vpump.response"], tvb(6, 1), response and 1 or 0)
    local name = spec and string.upper(spec.name) or string.format("0x%02X", code)
    root:add(F["vpump.command"], tvb(6, 1), name)
    local kind = response and "response" or "request"
    pinfo.cols.info:set(string.format("%s %s seq=%d", name, kind, seq))
    root:append_text(string.format(", %s %s, SEQ %d", name, kind, seq))

    local n = len - MIN_LEN
    local offset = 7
    local payload = root       -- an empty payload has no item of its own to hang fields on
    if n > 0 then payload = root:add(F["vpump.payload"], tvb(offset, n)) end
    local crc_ok = crc16(tvb, 2, len + 4) == 0       -- over LEN..CRC a good frame leaves 0
    if not crc_ok then
        return          -- the payload of a damaged frame is not to be trusted: not decoded
    end
    if spec == nil then
        payload:add_proto_expert_info(ex_unknown, string.format("unknown command 0x%02X", code))
        if response and n == GEN.nak_size and tvb(offset, 1):uint() ~= 0 then
            payload:add(F["vpump.status"], tvb(offset, 1))
            decode_nak(payload, tvb, offset, n, pinfo)
        end
        return
    end
    if spec.auth then
        local first = n > 0 and tvb(offset, 1):uint() or 0
        local bare = response and n == GEN.nak_size and first > 0 and first < FIRST_REQUEST_REASON
                     and first ~= ROLE_NOT_ALLOWED
        if not bare then
            if n < GEN.session_overhead then
                payload:add_proto_expert_info(ex_malformed, string.format(
                    "%d bytes: shorter than a session's counter and MAC (%d bytes)", n, GEN.session_overhead))
                return
            end
            payload:add(F["vpump.counter"], tvb(offset, 4))
            payload:add(F["vpump.mac"], tvb(offset + n - 8, 8)):append_text(
                " (not checked: that needs the session key)")
            pinfo.cols.info:append(string.format(" counter=%d", tvb(offset, 4):uint()))
            offset = offset + 4
            n = n - GEN.session_overhead
        end
    end
    local what = string.format("%s %s", name, kind)
    if response then
        if n < 1 then
            wrong_length(payload, what, n, "at least 1 (the status)")
            return
        end
        local status = tvb(offset, 1):uint()
        payload:add(F["vpump.status"], tvb(offset, 1))
        if status ~= 0 then
            decode_nak(payload, tvb, offset, n, pinfo)
            return
        end
        pinfo.cols.info:append(" ok")
        decode_codec(payload, tvb, offset + 1, n - 1, "vpump." .. spec.name .. ".resp", spec.response, what)
    else
        decode_codec(payload, tvb, offset, n, "vpump." .. spec.name, spec.request, what)
    end
end

function vpump.dissector(tvb, pinfo, tree)
    pinfo.cols.protocol = "VPUMP"
    local size = tvb:len()
    local root = tree:add(vpump, tvb(), "vpump telemetry")
    if size < 2 or tvb(0, 2):uint() ~= SYNC then
        root:add(F["vpump.garbage"], tvb())
        root:add_proto_expert_info(ex_garbage, string.format("%d bytes that do not start with the sync A5 5A", size))
        pinfo.cols.info:set(string.format("Not a frame: %d bytes", size))
        return size
    end
    root:add(F["vpump.sync"], tvb(0, 2))
    if size < 4 then
        root:add_proto_expert_info(ex_partial, string.format("incomplete frame: %d bytes, no LEN", size))
        pinfo.cols.info:set("Incomplete frame")
        return size
    end
    local len = tvb(2, 2):uint()
    local len_item = root:add(F["vpump.len"], tvb(2, 2))
    if len < MIN_LEN or len > MAX_LEN then
        len_item:add_proto_expert_info(ex_garbage, string.format("LEN %d is out of range: allowed %d..%d",
                                                                 len, MIN_LEN, MAX_LEN))
        root:add(F["vpump.garbage"], tvb())
        pinfo.cols.info:set(string.format("Not a frame: LEN %d", len))
        return size
    end
    if size < len + 6 then
        root:add_proto_expert_info(ex_partial, string.format("incomplete frame: %d of its %d bytes",
                                                             size, len + 6))
        pinfo.cols.info:set(string.format("Incomplete frame: %d of %d bytes", size, len + 6))
        return size
    end
    dissect_frame(tvb, pinfo, root, len)
    local crc_range = tvb(len + 4, 2)
    local computed = crc16(tvb, 2, len + 2)
    local crc_item = root:add(F["vpump.crc"], crc_range)
    if crc16(tvb, 2, len + 4) == 0 then
        root:add(F["vpump.crc.status"], crc_range, 1)
        crc_item:append_text(" [correct]")
    else
        root:add(F["vpump.crc.computed"], crc_range, computed)
        root:add(F["vpump.crc.status"], crc_range, 0)
        crc_item:append_text(string.format(" [incorrect, should be 0x%04x]", computed))
        crc_item:add_proto_expert_info(ex_bad_crc, string.format("CRC 0x%04x, computed 0x%04x: the frame was damaged",
                                                                 crc_range:uint(), computed))
        pinfo.cols.info:append(" [bad CRC]")
    end
    if size > len + 6 then
        local extra = tvb(len + 6, size - len - 6)
        root:add(F["vpump.trailing"], extra):add_proto_expert_info(
            ex_malformed, string.format("%d bytes after the frame", size - len - 6))
    end
    return size
end

DissectorTable.get("wtap_encap"):add(wtap.USER0, vpump)
