"""A small L2 learning switch for os-ken (Debian python3-os-ken), used by OpenFlowControllerTests.

On connection it installs a table-miss rule (priority 0, match all, output CONTROLLER without buffering).
Each PACKET_IN teaches it the source MAC's port; if the destination is known it installs
`eth_dst=DST -> output:PORT` (priority 1) and sends the packet there, else it floods the packet.
It logs one line per event to stdout ("EVENT key=value ...") for the test to read.
"""
import sys

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.lib.packet import ethernet, packet
from os_ken.ofproto import ofproto_v1_3


def say(*words):
    print(" ".join(str(w) for w in words), flush=True)
    sys.stdout.flush()


class LearningSwitch(app_manager.OSKenApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.mac_to_port = {}

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def switch_features(self, ev):
        datapath = ev.msg.datapath
        ofproto, parser = datapath.ofproto, datapath.ofproto_parser
        actions = [parser.OFPActionOutput(ofproto.OFPP_CONTROLLER, ofproto.OFPCML_NO_BUFFER)]
        self.add_flow(datapath, 0, parser.OFPMatch(), actions)
        datapath.send_msg(parser.OFPBarrierRequest(datapath))
        say("CONNECTED", "dpid=%016x" % datapath.id)
        say("TABLE_MISS_INSTALLED")

    def add_flow(self, datapath, priority, match, actions):
        ofproto, parser = datapath.ofproto, datapath.ofproto_parser
        instructions = [parser.OFPInstructionActions(ofproto.OFPIT_APPLY_ACTIONS, actions)]
        datapath.send_msg(parser.OFPFlowMod(datapath=datapath, priority=priority, match=match, instructions=instructions))

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def packet_in(self, ev):
        msg = ev.msg
        datapath = msg.datapath
        ofproto, parser = datapath.ofproto, datapath.ofproto_parser
        in_port = msg.match["in_port"]
        frame = packet.Packet(msg.data).get_protocol(ethernet.ethernet)
        if frame is None:
            return
        say("PACKET_IN", "in_port=%d" % in_port, "src=%s" % frame.src, "dst=%s" % frame.dst, "reason=%d" % msg.reason)
        self.mac_to_port[frame.src] = in_port
        out_port = self.mac_to_port.get(frame.dst, ofproto.OFPP_FLOOD)
        actions = [parser.OFPActionOutput(out_port)]
        if out_port != ofproto.OFPP_FLOOD:
            self.add_flow(datapath, 1, parser.OFPMatch(eth_dst=frame.dst), actions)
            say("FLOW_INSTALLED", "eth_dst=%s" % frame.dst, "port=%d" % out_port)
        datapath.send_msg(parser.OFPPacketOut(datapath=datapath, buffer_id=ofproto.OFP_NO_BUFFER, in_port=in_port,
                                              actions=actions, data=msg.data))
