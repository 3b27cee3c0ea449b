// Simulation model of the ECP5 carry cell CCU2C, for designs generated with --family ecp5
// (bnnforge's own behavioural description; synthesis uses the vendor primitive instead and
// never reads this file). Only INJECT1_x = "NO" is modelled, the setting bnnforge uses.
//
// Each half computes P = LUT4(A, B, C, D) from its 16-bit table and G = LUT2(A, B) from the
// table's low four bits; the sum is S = P ^ carry-in and the carry out is P ? carry-in : G.
// tests/hw/test_popcount_formal.py proves this model equal to Yosys's own CCU2C model.
`default_nettype none
module CCU2C #(
    parameter [15:0] INIT0 = 16'h0000,
    parameter [15:0] INIT1 = 16'h0000,
    parameter INJECT1_0 = "NO",
    parameter INJECT1_1 = "NO"
) (
    input wire CIN,
    input wire A0, B0, C0, D0,
    input wire A1, B1, C1, D1,
    output wire S0, S1, COUT
);
    wire p0 = INIT0[{D0, C0, B0, A0}];
    wire g0 = INIT0[{2'b00, B0, A0}];
    wire c0 = p0 ? CIN : g0;
    wire p1 = INIT1[{D1, C1, B1, A1}];
    wire g1 = INIT1[{2'b00, B1, A1}];
    assign S0 = p0 ^ CIN;
    assign S1 = p1 ^ c0;
    assign COUT = p1 ? c0 : g1;

    initial begin
        if (INJECT1_0 != "NO" || INJECT1_1 != "NO") begin
            $display("CCU2C model: only INJECT1_0 = INJECT1_1 = \"NO\" is modelled");
            $finish;
        end
    end
endmodule
`default_nettype wire
