# CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, not reflected, xorout 0; crc16(b"123456789")
# is 0x29B1.  Used by telemetry frames and by firmware/persist.py.
#
#   crc16_pure(data, crc=0xFFFF)  table-driven pure Python (runs on MicroPython)
#   crc16(data, crc=0xFFFF)       crcmod's C implementation when crcmod imports (host), else
#                                 crc16_pure; tests prove the two identical
#
# data is bytes, bytearray or memoryview.  With xorout 0 the register is the result, so a
# message may be fed in pieces: crc16(b, crc16(a)) == crc16(a + b).

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

CRC16_INIT = const(0xFFFF)
_POLY = const(0x1021)


def _make_table():
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            if crc & 0x8000:
                crc = ((crc << 1) ^ _POLY) & 0xFFFF
            else:
                crc = (crc << 1) & 0xFFFF
        table.append(crc)
    return tuple(table)


_TABLE = _make_table()


def crc16_pure(data, crc=CRC16_INIT):
    table = _TABLE
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ table[(crc >> 8) ^ byte]
    return crc


try:
    import crcmod.predefined
    # crcmod's function is crcfun(data, crc=init): with xorout 0 it continues from crc as given,
    # the same contract as crc16_pure.
    crc16 = crcmod.predefined.mkPredefinedCrcFun("crc-ccitt-false")
    CRC16_BACKEND = "crcmod"
except ImportError:
    crc16 = crc16_pure
    CRC16_BACKEND = "pure"
