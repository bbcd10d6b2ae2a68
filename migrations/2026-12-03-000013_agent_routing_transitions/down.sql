DROP TABLE agent_routing_transitions;
