// Simulation model of the ECP5 block RAM DP16KD, for designs generated with --family ecp5
// (bnnforge's own behavioural description; synthesis uses the vendor primitive instead and
// never reads this file). Modelled: the cell as a read-only memory, read on port B in 36-bit
// (pseudo-dual-port) mode or on either port in 18-bit mode, contents from INITVAL_00..3F, with
// or without the output registers (REGMODE_A, REGMODE_B). Writes, reset, chip selects and port A reads are not modelled: a write
// enable or reset seen high stops the simulation with a message.
//
// Contents: 1,024 rows of 18 bits; INITVAL_k holds rows 16k..16k+15, row i of it at bits
// [20i, 20i + 18). A 36-bit word a is rows 2a (DOA) and 2a + 1 (DOB) at address ADB[13:5]; an
// 18-bit word a is row a at AD[13:4] of its port. A port's read register loads when its CE is
// high at a rising clock; with REGMODE = "OUTREG" an output register after it loads when its
// OCE is high, so data appears two enabled cycles after its address.
// tests/hw/test_bram_ecp5.py checks this model against Yosys's own mapping of memories to the
// cell.
`default_nettype none
module DP16KD #(
    parameter DATA_WIDTH_A = 18,
    parameter DATA_WIDTH_B = 18,
    parameter REGMODE_A = "NOREG",
    parameter REGMODE_B = "NOREG",
    parameter RESETMODE = "SYNC",
    parameter ASYNC_RESET_RELEASE = "SYNC",
    parameter CSDECODE_A = "0b000",
    parameter CSDECODE_B = "0b000",
    parameter WRITEMODE_A = "NORMAL",
    parameter WRITEMODE_B = "NORMAL",
    parameter GSR = "ENABLED",
    parameter CLKAMUX = "CLKA",
    parameter CLKBMUX = "CLKB",
    parameter [319:0] INITVAL_00 = 320'h0,
    parameter [319:0] INITVAL_01 = 320'h0,
    parameter [319:0] INITVAL_02 = 320'h0,
    parameter [319:0] INITVAL_03 = 320'h0,
    parameter [319:0] INITVAL_04 = 320'h0,
    parameter [319:0] INITVAL_05 = 320'h0,
    parameter [319:0] INITVAL_06 = 320'h0,
    parameter [319:0] INITVAL_07 = 320'h0,
    parameter [319:0] INITVAL_08 = 320'h0,
    parameter [319:0] INITVAL_09 = 320'h0,
    parameter [319:0] INITVAL_0A = 320'h0,
    parameter [319:0] INITVAL_0B = 320'h0,
    parameter [319:0] INITVAL_0C = 320'h0,
    parameter [319:0] INITVAL_0D = 320'h0,
    parameter [319:0] INITVAL_0E = 320'h0,
    parameter [319:0] INITVAL_0F = 320'h0,
    parameter [319:0] INITVAL_10 = 320'h0,
    parameter [319:0] INITVAL_11 = 320'h0,
    parameter [319:0] INITVAL_12 = 320'h0,
    parameter [319:0] INITVAL_13 = 320'h0,
    parameter [319:0] INITVAL_14 = 320'h0,
    parameter [319:0] INITVAL_15 = 320'h0,
    parameter [319:0] INITVAL_16 = 320'h0,
    parameter [319:0] INITVAL_17 = 320'h0,
    parameter [319:0] INITVAL_18 = 320'h0,
    parameter [319:0] INITVAL_19 = 320'h0,
    parameter [319:0] INITVAL_1A = 320'h0,
    parameter [319:0] INITVAL_1B = 320'h0,
    parameter [319:0] INITVAL_1C = 320'h0,
    parameter [319:0] INITVAL_1D = 320'h0,
    parameter [319:0] INITVAL_1E = 320'h0,
    parameter [319:0] INITVAL_1F = 320'h0,
    parameter [319:0] INITVAL_20 = 320'h0,
    parameter [319:0] INITVAL_21 = 320'h0,
    parameter [319:0] INITVAL_22 = 320'h0,
    parameter [319:0] INITVAL_23 = 320'h0,
    parameter [319:0] INITVAL_24 = 320'h0,
    parameter [319:0] INITVAL_25 = 320'h0,
    parameter [319:0] INITVAL_26 = 320'h0,
    parameter [319:0] INITVAL_27 = 320'h0,
    parameter [319:0] INITVAL_28 = 320'h0,
    parameter [319:0] INITVAL_29 = 320'h0,
    parameter [319:0] INITVAL_2A = 320'h0,
    parameter [319:0] INITVAL_2B = 320'h0,
    parameter [319:0] INITVAL_2C = 320'h0,
    parameter [319:0] INITVAL_2D = 320'h0,
    parameter [319:0] INITVAL_2E = 320'h0,
    parameter [319:0] INITVAL_2F = 320'h0,
    parameter [319:0] INITVAL_30 = 320'h0,
    parameter [319:0] INITVAL_31 = 320'h0,
    parameter [319:0] INITVAL_32 = 320'h0,
    parameter [319:0] INITVAL_33 = 320'h0,
    parameter [319:0] INITVAL_34 = 320'h0,
    parameter [319:0] INITVAL_35 = 320'h0,
    parameter [319:0] INITVAL_36 = 320'h0,
    parameter [319:0] INITVAL_37 = 320'h0,
    parameter [319:0] INITVAL_38 = 320'h0,
    parameter [319:0] INITVAL_39 = 320'h0,
    parameter [319:0] INITVAL_3A = 320'h0,
    parameter [319:0] INITVAL_3B = 320'h0,
    parameter [319:0] INITVAL_3C = 320'h0,
    parameter [319:0] INITVAL_3D = 320'h0,
    parameter [319:0] INITVAL_3E = 320'h0,
    parameter [319:0] INITVAL_3F = 320'h0,
    parameter INIT_DATA = "STATIC"
) (
    input wire DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9,
    input wire DIA8, DIA7, DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0,
    input wire ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2,
    input wire ADA1, ADA0,
    input wire CEA, OCEA, CLKA, WEA, RSTA, CSA2, CSA1, CSA0,
    output wire DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9,
    output wire DOA8, DOA7, DOA6, DOA5, DOA4, DOA3, DOA2, DOA1, DOA0,
    input wire DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9,
    input wire DIB8, DIB7, DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0,
    input wire ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2,
    input wire ADB1, ADB0,
    input wire CEB, OCEB, CLKB, WEB, RSTB, CSB2, CSB1, CSB0,
    output wire DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9,
    output wire DOB8, DOB7, DOB6, DOB5, DOB4, DOB3, DOB2, DOB1, DOB0
);
    reg [17:0] rows [0:1023];
    integer i;
    initial begin
        for (i = 0; i < 16; i = i + 1) rows[0 * 16 + i] = INITVAL_00[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[1 * 16 + i] = INITVAL_01[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[2 * 16 + i] = INITVAL_02[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[3 * 16 + i] = INITVAL_03[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[4 * 16 + i] = INITVAL_04[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[5 * 16 + i] = INITVAL_05[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[6 * 16 + i] = INITVAL_06[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[7 * 16 + i] = INITVAL_07[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[8 * 16 + i] = INITVAL_08[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[9 * 16 + i] = INITVAL_09[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[10 * 16 + i] = INITVAL_0A[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[11 * 16 + i] = INITVAL_0B[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[12 * 16 + i] = INITVAL_0C[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[13 * 16 + i] = INITVAL_0D[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[14 * 16 + i] = INITVAL_0E[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[15 * 16 + i] = INITVAL_0F[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[16 * 16 + i] = INITVAL_10[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[17 * 16 + i] = INITVAL_11[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[18 * 16 + i] = INITVAL_12[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[19 * 16 + i] = INITVAL_13[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[20 * 16 + i] = INITVAL_14[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[21 * 16 + i] = INITVAL_15[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[22 * 16 + i] = INITVAL_16[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[23 * 16 + i] = INITVAL_17[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[24 * 16 + i] = INITVAL_18[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[25 * 16 + i] = INITVAL_19[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[26 * 16 + i] = INITVAL_1A[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[27 * 16 + i] = INITVAL_1B[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[28 * 16 + i] = INITVAL_1C[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[29 * 16 + i] = INITVAL_1D[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[30 * 16 + i] = INITVAL_1E[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[31 * 16 + i] = INITVAL_1F[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[32 * 16 + i] = INITVAL_20[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[33 * 16 + i] = INITVAL_21[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[34 * 16 + i] = INITVAL_22[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[35 * 16 + i] = INITVAL_23[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[36 * 16 + i] = INITVAL_24[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[37 * 16 + i] = INITVAL_25[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[38 * 16 + i] = INITVAL_26[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[39 * 16 + i] = INITVAL_27[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[40 * 16 + i] = INITVAL_28[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[41 * 16 + i] = INITVAL_29[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[42 * 16 + i] = INITVAL_2A[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[43 * 16 + i] = INITVAL_2B[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[44 * 16 + i] = INITVAL_2C[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[45 * 16 + i] = INITVAL_2D[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[46 * 16 + i] = INITVAL_2E[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[47 * 16 + i] = INITVAL_2F[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[48 * 16 + i] = INITVAL_30[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[49 * 16 + i] = INITVAL_31[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[50 * 16 + i] = INITVAL_32[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[51 * 16 + i] = INITVAL_33[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[52 * 16 + i] = INITVAL_34[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[53 * 16 + i] = INITVAL_35[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[54 * 16 + i] = INITVAL_36[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[55 * 16 + i] = INITVAL_37[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[56 * 16 + i] = INITVAL_38[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[57 * 16 + i] = INITVAL_39[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[58 * 16 + i] = INITVAL_3A[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[59 * 16 + i] = INITVAL_3B[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[60 * 16 + i] = INITVAL_3C[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[61 * 16 + i] = INITVAL_3D[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[62 * 16 + i] = INITVAL_3E[i * 20 +: 18];
        for (i = 0; i < 16; i = i + 1) rows[63 * 16 + i] = INITVAL_3F[i * 20 +: 18];
    end

    wire [13:0] ada = {ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4,
                       ADA3, ADA2, ADA1, ADA0};
    wire [13:0] adb = {ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4,
                       ADB3, ADB2, ADB1, ADB0};
    // Port B reads 36 bits (both halves) in pseudo-dual-port mode, 18 bits otherwise; port A
    // reads 18 bits in 18-bit mode.
    reg [35:0] rdb = 36'd0, qb = 36'd0;
    reg [17:0] rda = 18'd0, qa = 18'd0;
    always @(posedge CLKB) begin
        if (CEB) begin
            if (DATA_WIDTH_B == 36)
                rdb <= {rows[{adb[13:5], 1'b1}], rows[{adb[13:5], 1'b0}]};
            else
                rdb <= {18'd0, rows[adb[13:4]]};
        end
        if (OCEB) qb <= rdb;
    end
    always @(posedge CLKA) begin
        if (CEA && DATA_WIDTH_A == 18) rda <= rows[ada[13:4]];
        if (OCEA) qa <= rda;
    end
    wire [35:0] outb = (REGMODE_B == "OUTREG") ? qb : rdb;
    wire [17:0] outa = (REGMODE_A == "OUTREG") ? qa : rda;
    wire [17:0] doa = (DATA_WIDTH_B == 36) ? outb[17:0] : outa;
    wire [17:0] dob = (DATA_WIDTH_B == 36) ? outb[35:18] : outb[17:0];
    assign {DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9,
            DOA8, DOA7, DOA6, DOA5, DOA4, DOA3, DOA2, DOA1, DOA0} = doa;
    assign {DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9,
            DOB8, DOB7, DOB6, DOB5, DOB4, DOB3, DOB2, DOB1, DOB0} = dob;

    // Only the read-only use is modelled.
    always @(posedge CLKA) if (CEA && WEA) begin
        $display("DP16KD model: writes on port A are not modelled");
        $finish;
    end
    always @(posedge CLKB) if ((CEB && WEB) || RSTB || RSTA) begin
        $display("DP16KD model: writes on port B and resets are not modelled");
        $finish;
    end
    initial begin
        if (!((DATA_WIDTH_B == 36 && DATA_WIDTH_A == 36) ||
              (DATA_WIDTH_B == 18 && DATA_WIDTH_A == 18))) begin
            $display("DP16KD model: only 36-bit (pseudo-dual-port) or 18-bit ports are modelled");
            $finish;
        end
    end
endmodule
`default_nettype wire
